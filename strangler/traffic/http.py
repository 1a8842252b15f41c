"""Small JSON-over-HTTP helper for routers and sources that speak HTTP (proxy admin, Prometheus).

Errors are converted here, where they enter: a refused connection or a timeout becomes the
caller's ``Unreachable`` subclass naming the URL, a non-2xx answer a clear message with the
first bytes of the body.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from strangler.errors import StranglerError, Unreachable

__all__ = ["http_json"]


def http_json(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    timeout: float = 5.0,
    unreachable: type[Unreachable] = Unreachable,
    what: str = "endpoint",
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise StranglerError(f"{what} {url} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise unreachable(
            f"cannot reach the {what} at {url}: {reason}",
            hint="is it running? check the URL in the spec's traffic section",
        ) from exc
    except json.JSONDecodeError as exc:
        raise StranglerError(f"{what} {url} did not answer JSON: {exc}") from exc
