"""Passwords never leave strangler in text it prints or stores."""

from __future__ import annotations

import pytest

from strangler.secrets import dsn_password, redact_dsn, register_secret, scrub


@pytest.mark.parametrize(
    ("dsn", "shown", "password"),
    [
        ("postgresql://app:s3cret@db/shop", "postgresql://app:***@db/shop", "s3cret"),
        ("postgresql://app@db/shop", "postgresql://app@db/shop", None),
        (
            "host=db user=app password=s3cret dbname=x",
            "host=db user=app password=*** dbname=x",
            "s3cret",
        ),
        ("host=db password='s 3 cret' dbname=x", "host=db password=*** dbname=x", "s 3 cret"),
        (
            "postgresql://db/shop?user=a&password=p%40ss&sslmode=require",
            "postgresql://db/shop?user=a&password=***&sslmode=require",
            "p@ss",
        ),
        ("postgresql://app:p%40ss@db/shop", "postgresql://app:***@db/shop", "p@ss"),
    ],
)
def test_redact_dsn(dsn: str, shown: str, password: str | None) -> None:
    assert redact_dsn(dsn) == shown
    assert dsn_password(dsn) == password


def test_scrub_removes_registered_secrets_anywhere() -> None:
    register_secret("Xy7-registered-secret")
    assert scrub("error near 'Xy7-registered-secret' at 3") == "error near '***' at 3"
    register_secret("ab")  # too short to scrub safely; ignored
    assert scrub("abc") == "abc"
