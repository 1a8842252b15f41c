"""The service-role connectivity check against a real PostgreSQL server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strangler.checks.base import CheckContext, Verdict, run_checks
from strangler.checks.database import role_connectivity
from tests.checks_helpers import make_ctx, spec_text
from tests.fix_pg import Db


@pytest.fixture
def role(source_db: Db) -> Iterator[tuple[str, str]]:
    name, password = f"svc_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    source_db.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    source_db.execute(
        "CREATE TABLE public.customers (id int primary key, name text);"
        "CREATE TABLE public.orders (id int primary key);"
        "CREATE SCHEMA order_service;"
        "CREATE TABLE order_service.orders (id int primary key);"
        "INSERT INTO order_service.orders VALUES (1);"
    )
    source_db.execute(f"GRANT USAGE ON SCHEMA order_service TO {name}")
    source_db.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA order_service TO {name}")
    try:
        yield name, password
    finally:
        source_db.execute(f"DROP OWNED BY {name}")
        source_db.execute(f"DROP ROLE {name}")


def _ctx(tmp_path: Path, source_db: Db, name: str, password: str) -> CheckContext:
    role = f"{{ name: {name}, password: {json.dumps(password)} }}"
    return make_ctx(tmp_path, spec_text(source_db.dsn, role=role))


def test_passes_with_own_schema_only(tmp_path: Path, source_db: Db, role: tuple[str, str]) -> None:
    r = role_connectivity(_ctx(tmp_path, source_db, *role))
    assert r.verdict is Verdict.PASS, r.message
    assert r.message == (
        "logs in, uses schema order_service (1 tables read), cannot read the monolith's 2 tables"
    )
    assert role[1] not in json.dumps(r.to_dict())


def test_fails_when_it_can_read_a_monolith_table(
    tmp_path: Path, source_db: Db, role: tuple[str, str]
) -> None:
    source_db.execute(f"GRANT SELECT ON public.customers TO {role[0]}")
    r = role_connectivity(_ctx(tmp_path, source_db, *role))
    assert r.verdict is Verdict.FAIL
    assert r.message == (
        "role can read the monolith's tables public.customers; revoke its "
        "access to keep the boundary"
    )


def test_fails_when_it_cannot_read_its_table(
    tmp_path: Path, source_db: Db, role: tuple[str, str]
) -> None:
    source_db.execute(f"REVOKE SELECT ON order_service.orders FROM {role[0]}")
    r = role_connectivity(_ctx(tmp_path, source_db, *role))
    assert r.verdict is Verdict.FAIL
    assert r.message == (
        "role cannot read order_service.orders: permission denied for table orders"
    )


def test_fails_without_schema_usage_or_schema(
    tmp_path: Path, source_db: Db, role: tuple[str, str]
) -> None:
    source_db.execute(f"REVOKE USAGE ON SCHEMA order_service FROM {role[0]}")
    r = role_connectivity(_ctx(tmp_path, source_db, *role))
    assert (r.verdict, r.message) == (
        Verdict.FAIL,
        "role cannot use schema order_service (no USAGE)",
    )
    source_db.execute("DROP SCHEMA order_service CASCADE")
    r = role_connectivity(_ctx(tmp_path, source_db, *role))
    assert r.verdict is Verdict.FAIL
    assert r.message.startswith("schema order_service does not exist yet; create it with")


def test_wrong_password_fails_without_leaking_it(
    tmp_path: Path, source_db: Db, role: tuple[str, str]
) -> None:
    ctx = _ctx(tmp_path, source_db, role[0], "wrong-password-123")
    [r] = run_checks(ctx, [("db", role_connectivity)])
    assert r.verdict is Verdict.FAIL
    assert "refused the credentials" in r.message
    assert "wrong-password-123" not in json.dumps(r.to_dict())


def test_skipped_without_role(tmp_path: Path, source_db: Db) -> None:
    r = role_connectivity(make_ctx(tmp_path, spec_text(source_db.dsn)))
    assert (r.verdict, r.message) == (Verdict.SKIPPED, "no target.role in the spec to log in as")


def test_role_not_created_yet_is_a_warning(tmp_path: Path, source_db: Db) -> None:
    ctx = _ctx(tmp_path, source_db, "svc_not_there_yet", "pw-123456")
    r = role_connectivity(ctx)
    assert (r.verdict, r.required) == (Verdict.WARN, False)
    assert r.message.startswith(
        "role svc_not_there_yet does not exist yet; 'strangler copy order_service' creates it"
    )
