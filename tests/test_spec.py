"""The spec: discovery, interpolation, and an exact message for every kind of mistake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from strangler.durations import format_duration, parse_duration
from strangler.errors import SpecError, UnknownService
from strangler.spec import find_spec_file, load_spec, parse_spec_text

GOOD = """\
version: 1
source:
  dsn: ${MONOLITH_DSN}
services:
  order_service:
    tables: [orders, order_items]
    target:
      dsn: ${SVC_DSN:-postgresql://svc-host/orders}
      schema: order_service
      role: { name: order_service_app, password: "${ORDER_PW}" }
    strategy: online
    decommission: { stable_for: 14d, drop_old_tables_after: 1w }
"""

ENV = {"MONOLITH_DSN": "postgresql://app@db/monolith", "ORDER_PW": "s3cr3t-pw"}


def parse(text: str, env: dict[str, str] | None = None) -> object:
    return parse_spec_text(text, name="strangler.yaml", env=ENV if env is None else env)


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(SpecError) as info:
        parse(text, env)
    return str(info.value)


def test_good_spec_loads_with_interpolation_and_defaults() -> None:
    spec = parse_spec_text(GOOD, env=ENV)
    svc = spec.service("order_service")
    assert spec.source.dsn == "postgresql://app@db/monolith"
    assert spec.source.schema_ == "public"
    assert svc.target.dsn == "postgresql://svc-host/orders"  # the ${VAR:-default}
    assert svc.target.role is not None
    assert svc.target.role.password is not None
    assert svc.target.role.password.get_secret_value() == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(spec)
    assert svc.strategy == "online"
    assert svc.decommission.drop_old_tables_after == timedelta(days=7)
    assert svc.foreign_keys.leaving == "drop"
    assert spec.state == "sqlite:///.strangler/state.db"


def test_interpolated_value_is_not_reparsed_as_yaml() -> None:
    # A password with YAML syntax in it must stay one string, not change the document.
    env = {**ENV, "ORDER_PW": "a: b # c, {d}"}
    spec = parse_spec_text(GOOD, env=env)
    role = spec.service("order_service").target.role
    assert role is not None and role.password is not None
    assert role.password.get_secret_value() == "a: b # c, {d}"


def test_dollar_dollar_escapes_a_literal_dollar() -> None:
    text = GOOD.replace("${ORDER_PW}", "pa$$word")
    role = parse_spec_text(text, env=ENV).service("order_service").target.role
    assert role is not None and role.password is not None
    assert role.password.get_secret_value() == "pa$word"


def test_missing_environment_variable_is_named_with_line_and_path() -> None:
    msg = error_of(GOOD, env={"MONOLITH_DSN": "x"})
    assert "strangler.yaml:10: services.order_service.target.role.password" in msg
    assert "environment variable ORDER_PW is not set" in msg


def test_empty_variable_with_default_takes_the_default() -> None:
    spec = parse_spec_text(GOOD, env={**ENV, "SVC_DSN": ""})
    assert spec.service("order_service").target.dsn == "postgresql://svc-host/orders"


def test_secret_value_never_appears_in_validation_errors() -> None:
    text = GOOD.replace("strategy: online", "strategy: 12")
    env = {**ENV, "ORDER_PW": "topsecret-value"}
    msg = error_of(text, env)
    assert "topsecret-value" not in msg
    assert "services.order_service.strategy" in msg


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    strategy: online", "    strategy: onlin"),
            "strangler.yaml:11: services.order_service.strategy: "
            "Input should be 'copy', 'online' or 'move'",
        ),
        (
            ("      schema: order_service", "      shema: order_service"),
            "strangler.yaml:9: services.order_service.target.shema: unknown key 'shema'; "
            "allowed here: dsn, role, schema",
        ),
        (("version: 1", "version: 2"), "strangler.yaml:1: version: Input should be 1"),
        (
            ("    tables: [orders, order_items]", "    tables: []"),
            "strangler.yaml:6: services.order_service.tables: list at least one table to move",
        ),
        (
            ("    tables: [orders, order_items]", "    tables: [orders, orders]"),
            "services.order_service.tables: lists orders more than once",
        ),
        (
            ("  order_service:", "  Order-Service:"),
            "services.Order-Service: service name 'Order-Service' must be 1-40 lower-case",
        ),
        (
            ("      schema: order_service", "      schema: " + "s" * 64),
            "services.order_service.target.schema: "
            "is 64 bytes long; PostgreSQL names are at most 63",
        ),
        (
            (
                "    decommission: { stable_for: 14d, drop_old_tables_after: 1w }",
                "    decommission: { stable_for: two weeks }",
            ),
            "services.order_service.decommission.stable_for: 'two weeks' is not a duration",
        ),
        (
            ("      dsn: ${SVC_DSN:-postgresql://svc-host/orders}\n", ""),
            None,
        ),  # valid: same instance with a new schema
        (
            ("version: 1\n", "version: 1\nstate: mysql://x\n"),
            "strangler.yaml:2: state: must be sqlite:///path/to/state.db or a postgresql:// URL",
        ),
        (("services:", "servics:"), "strangler.yaml:4: servics: unknown key 'servics'"),
    ],
)
def test_broken_spec_messages(change: tuple[str, str], expected: str | None) -> None:
    old, new = change
    assert old in GOOD
    text = GOOD.replace(old, new)
    if expected is None:
        parse(text)
        return
    assert expected in error_of(text)


def test_missing_required_key_names_its_parent_line() -> None:
    text = GOOD.replace("      schema: order_service\n", "")
    msg = error_of(text)
    assert "strangler.yaml:7: services.order_service.target.schema: is required but missing" in msg


def test_same_instance_into_source_schema_is_refused() -> None:
    text = GOOD.replace("      dsn: ${SVC_DSN:-postgresql://svc-host/orders}\n", "").replace(
        "schema: order_service", "schema: public"
    )
    assert "the monolith's own schema on the same instance" in error_of(text)


def test_keeping_foreign_keys_across_instances_is_refused() -> None:
    text = GOOD.replace(
        "    strategy: online", "    strategy: online\n    foreign_keys: {leaving: keep}"
    )
    assert "a foreign key cannot cross instances: use 'drop'" in error_of(text)


def test_invalid_yaml_names_the_line() -> None:
    msg = error_of("version: 1\nsource: [unclosed\n")
    assert msg.startswith("strangler.yaml:3: not valid YAML") or "strangler.yaml:2" in msg


def test_duplicate_keys_are_errors() -> None:
    msg = error_of(GOOD.replace("    strategy: online", "    strategy: online\n    strategy: copy"))
    assert "services.order_service.strategy: appears twice" in msg


def test_empty_spec() -> None:
    assert "the spec is empty" in error_of("")


def test_unknown_router_kind_lists_valid_ones() -> None:
    text = (
        GOOD + "    traffic:\n      route: /api/v1/orders*\n      router: { kind: nginx-magic }\n"
    )
    msg = error_of(text)
    assert "services.order_service.traffic.router" in msg
    assert "unknown router kind 'nginx-magic'; valid kinds:" in msg


def test_traffic_steps_must_increase_to_100() -> None:
    text = GOOD + (
        "    traffic:\n      route: /x\n      router: { kind: nginx-magic }\n"
        "      steps: [50, 20]\n"
    )
    assert "steps must increase strictly" in error_of(text)


def test_unknown_service_lists_known_ones() -> None:
    spec = parse_spec_text(GOOD, env=ENV)
    with pytest.raises(UnknownService, match=r"no service 'orders' .* it declares: order_service"):
        spec.service("orders")


def test_spec_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STRANGLER_SPEC", raising=False)
    with pytest.raises(SpecError, match=r"strangler.yaml \(the default\) does not exist"):
        find_spec_file(None)
    (tmp_path / "strangler.yaml").write_text("x")
    assert find_spec_file(None) == Path("strangler.yaml")
    (tmp_path / "env.yaml").write_text("x")
    monkeypatch.setenv("STRANGLER_SPEC", str(tmp_path / "env.yaml"))
    assert find_spec_file(None) == tmp_path / "env.yaml"
    (tmp_path / "flag.yaml").write_text("x")
    assert find_spec_file(tmp_path / "flag.yaml") == tmp_path / "flag.yaml"
    with pytest.raises(SpecError, match=r"named by \$STRANGLER_SPEC"):
        monkeypatch.setenv("STRANGLER_SPEC", str(tmp_path / "nope.yaml"))
        find_spec_file(None)


def test_state_path_is_relative_to_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "strangler.yaml"
    path.parent.mkdir()
    path.write_text(GOOD.replace("version: 1", "version: 1\nstate: sqlite:///st/j.db"))
    spec = load_spec(path, env=ENV)
    assert spec.state_url() == f"sqlite:///{tmp_path / 'sub' / 'st' / 'j.db'}"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("24h", 86400),
        ("14d", 14 * 86400),
        ("1h30m", 5400),
        ("1w", 604800),
        ("500ms", 0.5),
        (90, 90),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "ten minutes", "10", "10x", "h1", "-5m"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_duration_round_trips() -> None:
    for text in ("1d", "1h30m", "45s", "14d"):
        assert format_duration(parse_duration(text)) == text


def test_move_needs_the_monolith_s_own_instance() -> None:
    msg = error_of(GOOD.replace("    strategy: online", "    strategy: move"))
    assert "services.order_service.strategy is 'move'" in msg
    assert "remove target.dsn, or use strategy: copy or online" in msg


def test_move_keeps_foreign_keys_and_says_so_when_asked_to_drop_them() -> None:
    same = GOOD.replace("      dsn: ${SVC_DSN:-postgresql://svc-host/orders}\n", "")
    spec = parse_spec_text(same.replace("    strategy: online", "    strategy: move"), env=ENV)
    assert spec.services["order_service"].strategy == "move"
    drop = "    strategy: move\n    foreign_keys: {leaving: drop}"
    msg = error_of(same.replace("    strategy: online", drop))
    assert "strategy 'move' keeps the moved tables' foreign keys" in msg
