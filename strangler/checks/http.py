"""Pre-flight: "Health checks passing for all new services", as an HTTP GET of the spec's
``preflight.health_url`` (for a service reachable without Kubernetes, or its ingress)."""

from __future__ import annotations

import urllib.error
import urllib.request

from strangler.checks.base import CheckContext, CheckResult, Verdict

__all__ = ["http_health"]

NAME = "service health (http)"


def http_health(ctx: CheckContext, *, timeout: float = 5.0) -> CheckResult:
    pre = ctx.svc.preflight
    url = pre.health_url if pre else None
    if not url:
        return CheckResult(NAME, Verdict.SKIPPED, "no preflight.health_url in the spec")
    if not url.startswith(("http://", "https://")):
        return CheckResult(NAME, Verdict.FAIL, f"health_url {url!r} is not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # scheme checked above
            status = int(resp.status)
            body = resp.read(200).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(200).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return CheckResult(NAME, Verdict.FAIL, f"{url} cannot be reached: {reason}", {"url": url})
    evidence = {"url": url, "status": status, "body": body[:120]}
    if 200 <= status < 300:
        return CheckResult(NAME, Verdict.PASS, f"{url} returned {status}", evidence)
    return CheckResult(NAME, Verdict.FAIL, f"{url} returned {status}", evidence)
