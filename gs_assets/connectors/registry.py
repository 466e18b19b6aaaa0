"""The connector kinds, keyed by the `type` of their connections. Adding a kind: a folder under
gs_assets/connectors/ whose `connector.py` supplies a `Kind`, and one `register` line here."""

from __future__ import annotations

from gs_assets.config.jobs import register_connection_model
from gs_assets.connectors.bulk_upload.connector import BULK_UPLOAD
from gs_assets.connectors.kind import Kind
from gs_assets.connectors.s3_files.connector import S3_FILES

KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind; its connection model joins the config's `Connection` union."""
    KINDS[kind.type] = kind
    if kind.connection_model is not None:
        register_connection_model(kind.type, kind.connection_model)
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


register(S3_FILES)
register(BULK_UPLOAD)
