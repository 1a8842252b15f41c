"""AWS clients, built in one place so tests aim them at moto's server.

Set ``AWS_ENDPOINT_URL`` (honoured by boto3 itself) or pass ``endpoint_url``; region from the
argument, else ``AWS_REGION``/``AWS_DEFAULT_REGION``, else us-east-1. botocore's errors are
converted at the call sites into StranglerErrors that name the resource and the fix.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["client"]


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None) -> Any:
    import boto3

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    kwargs: dict[str, Any] = {"region_name": region or "us-east-1"}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return boto3.client(service, **kwargs)
