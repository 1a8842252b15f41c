"""moto's server answers boto3 clients built by strangler.aws."""

from __future__ import annotations

from strangler.aws import client


def test_clients_reach_moto(aws_env: str) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket="strangler-test")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["strangler-test"]
    assert s3.meta.endpoint_url == aws_env
