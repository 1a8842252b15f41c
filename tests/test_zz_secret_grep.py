"""After the whole suite (this file is collected last): no password in anything strangler
produced (issue 15).

Every test that runs the command line leaves, through the ``cli`` fixture, what strangler
printed and the journals, reports and logs it wrote, with the secrets that test gave it (the
passwords in its specs' DSNs, environment values named like secrets). Each test already
fails on its own leak; this one greps everything the suite produced for every secret any
test used, so a password cannot surface in another test's output either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fix_spec import leaks


def test_no_password_anywhere_in_what_the_suite_produced(produced: Path) -> None:
    runs = [d for d in produced.iterdir() if d.is_dir()]
    if not runs:
        pytest.skip("no test ran the command line in this session")
    secrets: set[str] = set()
    made: dict[str, bytes] = {}
    for run in runs:
        given = run / "secrets.given"
        if given.exists():
            secrets.update(s for s in given.read_text().splitlines() if s)
        for path in run.glob("*.produced"):
            made[f"{run.name}/{path.stem}"] = path.read_bytes()
    assert secrets, "the suite gave strangler passwords; none were recorded"
    assert made
    found = leaks(secrets, made)
    assert found == [], f"{len(found)} leak(s) in {len(made)} outputs of {len(runs)} tests"


def test_the_grep_finds_what_it_looks_for() -> None:
    """The grep itself: secrets from DSNs (URI and key=value, URL-encoded) and from
    environment variables named like secrets, found raw or URL-encoded; short ones ignored."""
    from tests.fix_spec import secrets_in

    spec = (
        'source: { dsn: "postgresql://app:p%40ss-word-1@db/x" }\ndsn: host=h password=kv-secret-2'
    )
    found = secrets_in([spec], {"SVC_PASSWORD": "env-secret-3", "SHORT_PW": "abc", "PORT": "5432"})
    assert found == {"p@ss-word-1", "kv-secret-2", "env-secret-3"}
    made = {
        "clean": b"connected to db as app",
        "raw": b"error: env-secret-3 refused",
        "encoded": b"postgresql://app:p%40ss-word-1@db/x",
    }
    assert sorted(leaks(found, made)) == ["encoded: p@s\u2026", "raw: env\u2026"]
