"""The REST API kind: systems a spec file describes (`type: rest_api`, `system: salesforce`).

Units of work are syncs of a stream: the latest time partition syncs from the stream's cursor, an
earlier one re-syncs its window (discovery offers the latest); the reader lands each committed
chunk of records through the engine with its window and cursor in the ledger (gs_ops.syncs), so
the cursor advances when a load commits and nothing is left to do after the objects apply it.
"""

from __future__ import annotations

from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.incremental import cursor_moves_with_the_landing, discover_latest
from gs_assets.connectors.kind import Kind
from gs_assets.connectors.rest_api.assets import build_stream_asset, build_sync_schedules, streams, sync_partition
from gs_assets.connectors.rest_api.config import RestApiConnection, RestSource
from gs_assets.connectors.rest_api.connection_test import connection_check
from gs_assets.connectors.rest_api.resource import rest_resource_from_env
from gs_assets.dagster_jobs import build_source_job


def _land(context, cfg: PlatformConfig, warehouse, resources, connection: str, source_object: str, key: str) -> dict:
    return sync_partition(context, cfg, warehouse, resources["rest_api"], connection, source_object, key)


def _jobs(cfg: PlatformConfig) -> list:
    return [build_source_job(cfg, s.connection, s.name, s.key) for s in streams(cfg)]


def _nothing_to_load(cfg: PlatformConfig, job) -> str:
    return f"stream {job.source.summary} of connection {job.connection} has nothing to sync"


REST_API = Kind(
    type="rest_api",
    description="REST APIs of SaaS systems (one spec file per system: Salesforce, HubSpot, ...)",
    connection_model=RestApiConnection,
    source_model=RestSource,
    discover=discover_latest,
    land=_land,
    after_commit=cursor_moves_with_the_landing,
    partitions_name=lambda connection, source_object: None,  # time windows, not dynamic partitions
    nothing_to_load=_nothing_to_load,
    test_connection=connection_check,
    assets=lambda cfg: [build_stream_asset(cfg, s) for s in streams(cfg)],
    jobs=_jobs,
    schedules=build_sync_schedules,
    resources=lambda: {"rest_api": rest_resource_from_env()},
)
