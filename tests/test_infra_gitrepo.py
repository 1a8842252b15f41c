"""strangler.infra.gitrepo against a real git repository in tmp_path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from strangler.errors import BadInput
from strangler.infra.gitrepo import (
    GitFailed,
    InfraRepo,
    decommission_tag,
    k8s_rollback,
    shift_message,
    terraform_rollback,
    traffic_rollback,
)


@pytest.fixture
def repo(tmp_path: Path) -> InfraRepo:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return InfraRepo(tmp_path, author="alice")


def _git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(path), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_message_forms_match_the_runbook() -> None:
    assert shift_message(20, "order_service", "prod") == (
        "feat(migration): shift 20% traffic to order_service in prod"
    )
    assert traffic_rollback("5xx  above\n gate") == (
        "revert(migration): rollback traffic to monolith — 5xx above gate"
    )
    assert k8s_rollback("order_service", "bad image") == (
        "revert(k8s): roll back order_service to previous version — bad image"
    )
    assert terraform_rollback("terraform_data.canary", "wrong") == (
        "revert(terraform): remove terraform_data.canary — wrong"
    )
    assert decommission_tag("order_service") == (
        "v1.0.0-order_service-decommissioned",
        "order_service monolith code path decommissioned",
    )
    with pytest.raises(BadInput, match="needs a reason"):
        traffic_rollback("  ")


def test_commit_named_paths_with_author(repo: InfraRepo, tmp_path: Path) -> None:
    (tmp_path / "terraform.tfvars").write_text("order_service_weight = 20\n")
    (tmp_path / "other.txt").write_text("not staged\n")
    sha = repo.commit(shift_message(20, "order_service", "prod"), paths=["terraform.tfvars"])
    assert sha == _git(tmp_path, "rev-parse", "HEAD")
    assert repo.last_message() == "feat(migration): shift 20% traffic to order_service in prod"
    assert _git(tmp_path, "log", "-1", "--format=%an") == "alice"
    assert _git(tmp_path, "show", "--name-only", "--format=", "HEAD") == "terraform.tfvars"


def test_commit_with_nothing_changed_refuses(repo: InfraRepo, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    repo.commit("first")
    with pytest.raises(GitFailed, match="nothing to commit"):
        repo.commit(k8s_rollback("svc", "why"))
    sha = repo.commit(k8s_rollback("svc", "why"), allow_empty=True)
    assert repo.head() == sha


def test_annotated_tag_idempotent_on_same_commit(repo: InfraRepo, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    repo.commit("first")
    name, msg = decommission_tag("order_service")
    repo.tag(name, msg)
    repo.tag(name, msg)  # resumed step: no error
    assert _git(tmp_path, "cat-file", "-t", name) == "tag"  # annotated, not lightweight
    assert _git(tmp_path, "tag", "-l", "--format=%(contents)", name) == msg
    (tmp_path / "a").write_text("2")
    repo.commit("second")
    with pytest.raises(GitFailed, match="already exists"):
        repo.tag(name, msg)
    with pytest.raises(BadInput, match="not a valid tag name"):
        repo.tag("bad tag", "x")


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is not a git repository"):
        InfraRepo(tmp_path)
