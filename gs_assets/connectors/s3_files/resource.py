"""The S3 connection resource: endpoint, region and credentials come only from env vars (gs_assets/settings.py).

`GSDP_S3_ENDPOINT_URL` points at an S3-compatible server (the demo starts moto on 127.0.0.1);
unset, boto3 talks to AWS. Credentials are read by `EnvVar`, so they never show in the UI.
"""

from __future__ import annotations

from typing import Iterator

from dagster_aws.s3 import S3Resource

from gs_assets.settings import Settings
from resources.aws import aws_client_kwargs


def s3_resource_from_env() -> S3Resource:
    s = Settings.from_env()
    return S3Resource(**aws_client_kwargs(s, "GSDP_S3_ENDPOINT_URL" if s.s3_endpoint_url else None))


def s3_client_from_env():
    """A boto3 S3 client from the same env vars, for code outside Dagster runs (the CLI)."""
    import boto3
    s = Settings.from_env()
    return boto3.client("s3", endpoint_url=s.s3_endpoint_url, region_name=s.aws_default_region)


def list_files(client, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[dict]:
    """Every object under the prefix (paginated), as boto3 returns them (Key, ETag, Size, LastModified);
    with `start_after`, only keys that sort after it (S3 StartAfter)."""
    paginator = client.get_paginator("list_objects_v2")
    extra = {"StartAfter": start_after} if start_after else {}
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **extra):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                yield obj


def clean_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else etag
