"""The SQS resource: the queue client for S3 event notifications (`listing: sqs` in a job's source).

Built from the settings like the S3 resource: `GSDP_SQS_ENDPOINT_URL` names the endpoint, else the
S3 endpoint (`GSDP_S3_ENDPOINT_URL`: moto serves both), else AWS; region and credentials are the
S3 connection's (`AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`). Endpoint and
credentials are read by `EnvVar`, so they never show in the UI.
"""

from __future__ import annotations

from typing import Optional

import dagster as dg

from gs_assets.settings import Settings
from resources.aws import aws_client_kwargs


class SqsResource(dg.ConfigurableResource):
    """An SQS client for S3 event notifications; every field unset = boto3's defaults (AWS)."""

    endpoint_url: Optional[str] = None
    region_name: Optional[str] = None
    aws_access_key_id: Optional[str] = None
    aws_secret_access_key: Optional[str] = None

    def get_client(self):
        import boto3
        return boto3.client("sqs", endpoint_url=self.endpoint_url or None, region_name=self.region_name or None,
                            aws_access_key_id=self.aws_access_key_id or None,
                            aws_secret_access_key=self.aws_secret_access_key or None)


def sqs_resource_from_settings(settings: Optional[Settings] = None) -> SqsResource:
    s = settings or Settings.from_env()
    endpoint = "GSDP_SQS_ENDPOINT_URL" if s.sqs_endpoint_url else ("GSDP_S3_ENDPOINT_URL" if s.s3_endpoint_url else None)
    return SqsResource(**aws_client_kwargs(s, endpoint))
