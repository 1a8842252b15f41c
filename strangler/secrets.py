"""Keep passwords out of everything strangler prints or stores.

Two layers, because one is never enough: DSNs are redacted structurally wherever they are
shown, and every secret value strangler learns (from the spec's environment, from a DSN) is
registered here so that :func:`scrub` can blank it out of any text on its way to a log line,
the journal, a report or an exception message, whatever produced that text.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote

__all__ = ["REDACTED", "dsn_password", "redact_dsn", "register_secret", "scrub"]

REDACTED = "***"

_lock = threading.Lock()
_secrets: set[str] = set()

# postgresql://user:password@host/db  -> the password part of the authority
_URI_PW = re.compile(
    r"(?P<pre>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>[^@/?#\s]*)(?P<post>@)", re.I
)
# password=secret  or  password='se cret'  in a key/value conninfo or a URI query string
_KV_PW = re.compile(r"(?P<pre>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s&]+)", re.I)


def register_secret(value: str | None) -> None:
    """Remember a secret so that :func:`scrub` removes it from any text later on."""
    if value and len(value) >= 3:
        with _lock:
            _secrets.add(value)


def dsn_password(dsn: str) -> str | None:
    """The password written inside a DSN, if any (URI or key/value form)."""
    m = _URI_PW.search(dsn)
    if m and m.group("pw"):
        return unquote(m.group("pw"))
    m = _KV_PW.search(dsn)
    if m:
        pw = m.group("pw")
        return pw[1:-1] if pw.startswith("'") else unquote(pw)
    return None


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***``; safe to print."""
    out = _URI_PW.sub(lambda m: m.group("pre") + REDACTED + m.group("post"), dsn)
    out = _KV_PW.sub(lambda m: m.group("pre") + REDACTED, out)
    return scrub(out)


def scrub(text: str) -> str:
    """Blank out every registered secret and any DSN password found in ``text``."""
    out = _URI_PW.sub(lambda m: m.group("pre") + REDACTED + m.group("post"), text)
    out = _KV_PW.sub(lambda m: m.group("pre") + REDACTED, out)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in out:
            out = out.replace(secret, REDACTED)
    return out
