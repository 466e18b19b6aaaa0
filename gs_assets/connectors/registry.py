"""The connector kinds, keyed by the `type` of their connections. Adding a kind: a folder under
gs_assets/connectors/ whose `connector.py` supplies a `Kind` (with its connection and source
models in the folder), and one `register` line here.

Config sits below the connectors and cannot import them: `register` hands the kind's config models
to the config layer, so whoever loads config imports this module first."""

from __future__ import annotations

from gs_assets.config.jobs import register_connection_model
from gs_assets.connectors.bulk_upload.connector import BULK_UPLOAD
from gs_assets.connectors.kind import Kind
from gs_assets.connectors.rest_api.connector import REST_API
from gs_assets.connectors.s3_files.connector import S3_FILES
from gs_assets.connectors.sql.connector import SQL

KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind; its connection model joins the config's `Connection` union, and its source model
    validates the sources of jobs on its connections."""
    KINDS[kind.type] = kind
    if kind.connection_model is not None:
        register_connection_model(kind.type, kind.connection_model, kind.source_model)
    return kind


def unregister(kind_type: str) -> None:
    kind = KINDS.pop(kind_type)
    if kind.connection_model is not None:
        register_connection_model(kind_type, None)


def kinds() -> list[Kind]:
    return list(KINDS.values())


def kind_of(connection) -> Kind:
    """The kind of a configured connection (by its `type`)."""
    return KINDS[connection.type]


def kind_of_job(cfg, job) -> Kind:
    """The kind of the connection a job reads."""
    return kind_of(cfg.connections[job.connection])


register(S3_FILES)
register(BULK_UPLOAD)
register(REST_API)
register(SQL)
