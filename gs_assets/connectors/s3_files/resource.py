"""The S3 connection resource: endpoint, region and credentials come only from env vars.

`GSDP_S3_ENDPOINT_URL` points at an S3-compatible server (the demo starts moto on 127.0.0.1);
unset, boto3 talks to AWS. Credentials are read by `EnvVar`, so they never show in the UI.
"""

from __future__ import annotations

import os
from typing import Iterator

import dagster as dg
from dagster_aws.s3 import S3Resource


def s3_resource_from_env() -> S3Resource:
    kwargs: dict = {"region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    if os.environ.get("GSDP_S3_ENDPOINT_URL"):
        kwargs["endpoint_url"] = dg.EnvVar("GSDP_S3_ENDPOINT_URL")
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs["aws_access_key_id"] = dg.EnvVar("AWS_ACCESS_KEY_ID")
        kwargs["aws_secret_access_key"] = dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    return S3Resource(**kwargs)


def s3_client_from_env():
    """A boto3 S3 client from the same env vars, for code outside Dagster runs (the CLI)."""
    import boto3
    return boto3.client("s3", endpoint_url=os.environ.get("GSDP_S3_ENDPOINT_URL") or None,
                        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


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


def sqs_client_for(s3: S3Resource):
    """An SQS client with the S3 connection's region and credentials (for S3 event notifications).
    `GSDP_SQS_ENDPOINT_URL` overrides the endpoint; by default it is the S3 endpoint (as moto serves both)."""
    import boto3
    endpoint = os.environ.get("GSDP_SQS_ENDPOINT_URL") or s3.endpoint_url or None
    return boto3.client("sqs", endpoint_url=endpoint, region_name=s3.region_name or None,
                        aws_access_key_id=s3.aws_access_key_id or None,
                        aws_secret_access_key=s3.aws_secret_access_key or None)
