"""The layers run one way (issue 11): read from the source, every import counts.

Mechanism (``pg/``, ``traffic/``, ``metrics/``, ``verify/``, ``checks/``, ``infra/``) never
imports the steps, the journal, the CLI, the renderers, the demo or rich; the library (all
but ``cli/``, ``render/`` and ``demo/``) never imports rich or those three; and the top-level
packages import each other without a cycle. Imports inside functions and under
``TYPE_CHECKING`` count too: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "strangler"

MECHANISM = ("pg", "traffic", "metrics", "verify", "checks", "infra", "work", "throttle", "dms")
ABOVE_MECHANISM = ("steps", "journal", "cli", "render", "demo")
FRONT = ("cli", "render", "demo")


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            # ``from strangler.steps import copy`` imports strangler.steps.copy
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


def _sources() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def _group(module: str) -> str | None:
    """The top-level package (or module) of a strangler module: ``strangler.pg.sync.cdc``
    → ``pg``; None for modules outside strangler."""
    parts = module.split(".")
    if parts[0] != "strangler" or len(parts) < 2:
        return None
    return parts[1]


SOURCES = _sources()


def test_the_source_tree_was_read() -> None:
    # A broken walk would make every test below pass vacuously.
    assert len(SOURCES) > 100
    assert "strangler.steps.run" in SOURCES and "strangler.pg.sync.cdc" in SOURCES
    assert "strangler.journal" in SOURCES["strangler.steps.runbook"]


@pytest.mark.parametrize("package", MECHANISM)
def test_mechanism_never_imports_what_is_above_it(package: str) -> None:
    bad = sorted(
        f"{mod} imports {imp}"
        for mod, imps in SOURCES.items()
        if _group(mod) == package
        for imp in imps
        if imp == "rich" or imp.startswith("rich.") or _group(imp) in ABOVE_MECHANISM
    )
    assert bad == []


def test_pg_never_imports_the_runbook_or_the_spec() -> None:
    bad = sorted(
        f"{mod} imports {imp}"
        for mod, imps in SOURCES.items()
        if _group(mod) == "pg"
        for imp in imps
        if _group(imp) in ("steps", "spec", "phases", "journal")
    )
    assert bad == []


def test_the_library_never_imports_rich_or_the_front_ends() -> None:
    bad = sorted(
        f"{mod} imports {imp}"
        for mod, imps in SOURCES.items()
        if _group(mod) not in FRONT and mod not in ("strangler.__main__",)
        for imp in imps
        if imp == "rich" or imp.startswith("rich.") or _group(imp) in FRONT
    )
    assert bad == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_top_level_packages_import_each_other_without_a_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, imps in SOURCES.items():
        src = _group(mod)
        if src is None or mod == "strangler":
            continue  # the package's own __init__ is the public API: it imports everything
        for imp in imps:
            dst = _group(imp)
            if dst is not None and dst != src:
                edges[src].add(dst)
    assert _cycles(edges) == []


def test_no_registry_is_filled_by_importing_modules_by_name() -> None:
    """Static tables written out in code: nothing calls ``import_module``/``__import__``.

    The exceptions resolve a table written out in code on first use, so that start-up stays
    cheap (issue 16): the package's public names, the backend kinds (an entry names its
    module) and the command line's command → module table. Each table is checked whole by a
    test of its own (test_kinds_resolve, test_the_command_table_names_…)."""
    lazy = {ROOT / "__init__.py", ROOT / "kinds.py", ROOT / "cli" / "__init__.py"}
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if path in lazy:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if name in ("import_module", "__import__"):
                    bad.append(f"{_module(path)}:{node.lineno}")
    assert bad == []


def test_kinds_resolve_to_their_modules_options_and_factories() -> None:
    # A kind names its module and options model as strings (resolved when a spec uses it);
    # a typo there would surface only for the spec that names that kind.
    from pydantic import BaseModel

    from strangler.metrics.kinds import SOURCES
    from strangler.traffic.kinds import ROUTERS

    for table in (ROUTERS, SOURCES):
        for name, kind in table.items():
            assert issubclass(kind.options, BaseModel), name
            assert callable(kind.create), name
            assert kind.module.rsplit(".", 1)[1].replace("_", "") == name.replace("_", ""), name
