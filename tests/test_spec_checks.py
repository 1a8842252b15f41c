"""The spec's preflight:, infra: and decommission additions: defaults, and an exact message
for each mistake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from strangler.errors import SpecError
from strangler.spec import parse_spec_text
from tests.checks_helpers import spec_text

DSN = "postgresql://x/db"


def _load(extra: str):  # type: ignore[no-untyped-def]
    return parse_spec_text(spec_text(DSN, extra), name="s.yaml", base_dir=Path("/specs"))


def test_sections_are_optional_and_defaulted() -> None:
    svc = _load("").service("order_service")
    assert svc.preflight is None and svc.infra is None
    assert svc.decommission.write_window == timedelta(days=1)
    assert svc.decommission.max_latency_ratio == 1.10
    svc = _load("preflight: {}\n").service("order_service")
    assert svc.preflight is not None
    assert svc.preflight.max_age == timedelta(hours=24)
    assert svc.preflight.attestations == ["oncall", "change_ticket"]


def test_paths_resolve_against_the_spec_folder() -> None:
    spec = _load("preflight:\n  terraform_dir: tf/prod\ninfra:\n  repo: /abs/infra\n")
    svc = spec.service("order_service")
    assert svc.preflight is not None and svc.preflight.terraform_dir is not None
    assert spec.resolve(svc.preflight.terraform_dir) == Path("/specs/tf/prod")
    assert svc.infra is not None and spec.resolve(svc.infra.repo) == Path("/abs/infra")


def test_unknown_preflight_key_lists_the_allowed_ones() -> None:
    with pytest.raises(SpecError) as err:
        _load("preflight:\n  helth_url: http://x\n")
    assert (
        "services.order_service.preflight.helth_url: unknown key 'helth_url'; allowed "
        "here: alarms, attestations, buckets, health_url, kubernetes, max_age, "
        "rehearsal_spec, terraform_dir" in str(err.value)
    )


def test_kubernetes_needs_a_namespace_and_a_valid_port() -> None:
    with pytest.raises(SpecError) as err:
        _load("preflight:\n  kubernetes: { port: 70000 }\n")
    text = str(err.value)
    assert "preflight.kubernetes.namespace: is required but missing" in text
    assert "preflight.kubernetes.port: Input should be less than or equal to 65535" in text


def test_bad_durations_and_infra_without_repo() -> None:
    with pytest.raises(SpecError, match=r"preflight\.max_age: "):
        _load("preflight:\n  max_age: soon\n")
    with pytest.raises(SpecError, match=r"decommission\.write_window: "):
        _load("decommission:\n  write_window: forever\n")
    with pytest.raises(SpecError, match=r"infra\.repo: is required but missing"):
        _load("infra:\n  env: prod\n")
