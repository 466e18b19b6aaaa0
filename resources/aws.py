"""What the S3 and SQS resources share: region, endpoint and keys from the settings, with every
value that may be a secret passed as a Dagster EnvVar (read when the resource is used, never shown
in the UI)."""

from __future__ import annotations

import dagster as dg

from gs_assets.settings import Settings


def aws_client_kwargs(s: Settings, endpoint_var: str | None) -> dict:
    """Keyword arguments for a dagster-aws style resource: the region, the endpoint from the env
    var `endpoint_var` (None: AWS's own), and the access keys when they are set."""
    kwargs: dict = {"region_name": s.aws_default_region}
    if endpoint_var:
        kwargs["endpoint_url"] = dg.EnvVar(endpoint_var)
    if s.aws_access_key_id:
        kwargs["aws_access_key_id"] = dg.EnvVar("AWS_ACCESS_KEY_ID")
        kwargs["aws_secret_access_key"] = dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    return kwargs
