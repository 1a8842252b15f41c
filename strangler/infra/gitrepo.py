"""Record infrastructure changes in a git repository, with the runbook's message forms.

The runbook ends every infrastructure change with a commit (or, at the very end, an annotated
tag) in the infrastructure repository, so that ``git log`` there is the audit trail. strangler
does the same when the spec names the repository. The message forms live here so every caller
writes them identically:

==========================  ==============================================================
:func:`shift_message`       ``feat(migration): shift 20% traffic to order_service in prod``
:func:`traffic_rollback`    ``revert(migration): rollback traffic to monolith — <reason>``
:func:`k8s_rollback`        ``revert(k8s): roll back <svc> to previous version — <reason>``
:func:`terraform_rollback`  ``revert(terraform): remove <resource> — <reason>``
:func:`decommission_tag`    ``v1.0.0-<service>-decommissioned``, message
                            ``<service> monolith code path decommissioned``
==========================  ==============================================================

Usage::

    repo = InfraRepo(Path("/srv/infra"))
    sha = repo.commit(shift_message(20, "order_service", "prod"),
                      paths=["terraform/environments/prod/terraform.tfvars"])
    repo.tag(*decommission_tag("order_service"))

Commits are made with ``git`` itself (it is on every machine that has a repo), with the
operator as author when given. Nothing is pushed: pushing is the operator's (or CI's) call.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from strangler.errors import BadInput, Unreachable
from strangler.errors import CommandFailed as GitFailed
from strangler.secrets import scrub

__all__ = [
    "GitFailed",
    "InfraRepo",
    "decommission_tag",
    "k8s_rollback",
    "shift_message",
    "terraform_rollback",
    "traffic_rollback",
]

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")


def shift_message(weight: int, service: str, env: str) -> str:
    """``feat(migration): shift 20% traffic to order_service in prod``."""
    return f"feat(migration): shift {weight}% traffic to {service} in {env}"


def traffic_rollback(reason: str) -> str:
    """``revert(migration): rollback traffic to monolith — <reason>``."""
    return f"revert(migration): rollback traffic to monolith — {_one_line(reason)}"


def k8s_rollback(service: str, reason: str) -> str:
    """``revert(k8s): roll back <service> to previous version — <reason>``."""
    return f"revert(k8s): roll back {service} to previous version — {_one_line(reason)}"


def terraform_rollback(resource: str, reason: str) -> str:
    """``revert(terraform): remove <resource> — <reason>``."""
    return f"revert(terraform): remove {resource} — {_one_line(reason)}"


def decommission_tag(service: str) -> tuple[str, str]:
    """The runbook's final tag for a service: ``(name, message)``."""
    return f"v1.0.0-{service}-decommissioned", f"{service} monolith code path decommissioned"


def _one_line(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise BadInput("a rollback needs a reason", hint="pass --reason '…'")
    return text


class InfraRepo:
    """A git working tree holding infrastructure code (Terraform, manifests)."""

    def __init__(self, path: Path, *, author: str | None = None) -> None:
        if shutil.which("git") is None:
            raise Unreachable("git is not installed", hint="apt-get install git")
        self.path = path
        self.author = author
        top = self._git("rev-parse", "--show-toplevel", check=False)
        if top.returncode != 0:
            raise BadInput(
                f"{path} is not a git repository",
                hint="set the infrastructure repository path in the spec, or run 'git init' there",
            )

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
        if self.author:
            name = self.author
            email = f"{re.sub(r'[^A-Za-z0-9._-]', '.', name)}@strangler.invalid"
            env.update(
                GIT_AUTHOR_NAME=name,
                GIT_AUTHOR_EMAIL=email,
                GIT_COMMITTER_NAME=env.get("GIT_COMMITTER_NAME", name),
                GIT_COMMITTER_EMAIL=env.get("GIT_COMMITTER_EMAIL", email),
            )
        try:
            proc = subprocess.run(
                ["git", "-C", str(self.path), *args],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unreachable(f"git {args[0]} in {self.path} failed: {exc}") from exc
        if check and proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            detail = scrub(lines[-1]) if lines else f"exit {proc.returncode}"
            raise GitFailed(f"git {args[0]} in {self.path} failed: {detail}")
        return proc

    def head(self) -> str | None:
        """The commit id of HEAD, or None in a repository with no commit yet."""
        proc = self._git("rev-parse", "--verify", "-q", "HEAD", check=False)
        return proc.stdout.strip() or None

    def commit(
        self, message: str, paths: Sequence[str | Path] = (), *, allow_empty: bool = False
    ) -> str:
        """Stage ``paths`` (relative to the repo, or absolute inside it; all changes when
        empty) and commit with ``message``. Returns the new commit id.

        Raises :class:`GitFailed` when there is nothing to commit and ``allow_empty`` is False,
        so a caller never records a change that was not made."""
        if not message.strip():
            raise BadInput("a commit needs a message")
        if paths:
            self._git("add", "--", *(str(p) for p in paths))
        else:
            self._git("add", "-A")
        staged = self._git("diff", "--cached", "--quiet", check=False).returncode != 0
        if not staged and not allow_empty:
            raise GitFailed(
                f"nothing to commit in {self.path} for: {message}",
                hint="the change was not written to the repository; check the paths",
            )
        args = ["commit", "-q", "-m", message]
        if allow_empty:
            args.append("--allow-empty")
        self._git(*args)
        return self.head() or ""

    def tag(self, name: str, message: str) -> None:
        """Create the annotated tag ``name`` at HEAD (``git tag -a NAME -m MESSAGE``).

        Re-tagging the same commit is a no-op (a resumed step); a tag already on another
        commit raises :class:`GitFailed`."""
        if not _TAG.match(name):
            raise BadInput(f"{name!r} is not a valid tag name")
        existing = self._git(
            "rev-parse", "-q", "--verify", f"refs/tags/{name}^{{commit}}", check=False
        ).stdout.strip()
        if existing:
            if existing == self.head():
                return
            raise GitFailed(
                f"tag {name} already exists in {self.path} on commit {existing[:12]}",
                hint=f"inspect it with 'git -C {self.path} show {name}'",
            )
        self._git("tag", "-a", name, "-m", message)

    def tags(self) -> list[str]:
        return [t for t in self._git("tag", "--list").stdout.split() if t]

    def last_message(self) -> str:
        return self._git("log", "-1", "--format=%B").stdout.strip()
