"""Every exception class strangler defines is in one tree, drawn in ``errors.py`` (issue 11),
and foreign exceptions are converted into it with the right exit code."""

from __future__ import annotations

import ast
import inspect
import sqlite3
from pathlib import Path

import psycopg
import pytest

from strangler import errors
from strangler.errors import (
    DatabaseError,
    DatabaseUnreachable,
    FileProblem,
    StranglerError,
    translate,
)

ROOT = Path(errors.__file__).parent


def test_no_exception_class_is_defined_outside_errors_py() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "errors.py" and path.parent == ROOT:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception", "Failed", "Unreachable")) for b in bases):
                    found.append(f"{path.relative_to(ROOT)}: {node.name}({', '.join(bases)})")
    assert found == []


def test_every_class_in_errors_py_is_in_the_tree_and_drawn_in_its_docstring() -> None:
    doc = errors.__doc__ or ""
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if obj.__module__ == errors.__name__
    ]
    assert len(classes) > 20
    for cls in classes:
        assert issubclass(cls, StranglerError), cls
        assert cls.__name__ in doc, f"{cls.__name__} is not drawn in the tree"
    assert set(errors.__all__) >= {c.__name__ for c in classes}


def test_exit_codes_follow_the_branches() -> None:
    assert errors.SpecError("x").exit_code == 2
    assert errors.FileProblem("x").exit_code == 2
    assert errors.GateFailed("x").exit_code == 1
    assert errors.SlotGone("x").exit_code == 1
    assert errors.RouterUnreachable("x").exit_code == 3
    assert errors.TerraformFailed("x", exit_code_tf=1).exit_code == 3


@pytest.mark.parametrize(
    ("raised", "expected", "code"),
    [
        (
            psycopg.OperationalError("connection to server at 127.0.0.1 failed"),
            DatabaseUnreachable,
            3,
        ),
        (psycopg.errors.AdminShutdown("terminating connection"), DatabaseUnreachable, 3),
        (
            psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
            DatabaseError,
            1,
        ),
        (
            psycopg.errors.InsufficientPrivilege("permission denied for table orders"),
            DatabaseError,
            1,
        ),
        (sqlite3.OperationalError("unable to open database file"), FileProblem, 2),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), DatabaseError, 1),
        (PermissionError(13, "Permission denied", "/etc/x"), FileProblem, 2),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_translate_converts_foreign_exceptions(
    raised: BaseException, expected: type[StranglerError], code: int
) -> None:
    with pytest.raises(expected) as caught, translate("the monolith"):
        raise raised
    assert caught.value.exit_code == code
    assert caught.value.__cause__ is raised


def test_translate_keeps_passwords_out_of_messages() -> None:
    from strangler.secrets import register_secret

    register_secret("hunter2-pw")
    with pytest.raises(DatabaseUnreachable) as caught, translate("the monolith"):
        raise psycopg.OperationalError("password for hunter2-pw rejected")
    assert "hunter2-pw" not in caught.value.message


def test_translate_leaves_strangler_errors_and_bugs_alone() -> None:
    with pytest.raises(errors.GateFailed), translate("x"):
        raise errors.GateFailed("no")
    with pytest.raises(KeyError), translate("x"):
        raise KeyError("a bug stays a bug")
