"""The SQL kind: databases and warehouses read through their standard drivers (`type: sql`,
`system: postgresql | mysql | mariadb | redshift | snowflake | bigquery`).

Units of work are syncs of a dataset (a table, a view or a read-only SELECT): the latest time
partition syncs from the dataset's cursor, an earlier one re-syncs its window; the reader lands
each committed chunk of rows through the engine with its window and cursor in the ledger
(gs_ops.syncs), so the cursor advances when a load commits and nothing is left to do after the
objects apply it.
"""

from __future__ import annotations

from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.incremental import cursor_moves_with_the_landing, discover_latest
from gs_assets.connectors.kind import Kind
from gs_assets.connectors.sql.assets import build_dataset_asset, build_sync_schedules, datasets, sync_partition
from gs_assets.connectors.sql.config import SqlConnection, SqlSource
from gs_assets.connectors.sql.connection_test import connection_check
from gs_assets.connectors.sql.resource import SqlResource
from gs_assets.dagster_jobs import build_source_job


def _land(context, cfg: PlatformConfig, warehouse, resources, connection: str, source_object: str, key: str) -> dict:
    return sync_partition(context, cfg, warehouse, resources["sql"], connection, source_object, key)


def _jobs(cfg: PlatformConfig) -> list:
    return [build_source_job(cfg, d.connection, d.name, d.key) for d in datasets(cfg)]


def _nothing_to_load(cfg: PlatformConfig, job) -> str:
    return f"{job.source.summary} of connection {job.connection} has nothing to sync"


SQL = Kind(
    type="sql",
    description="databases and warehouses (PostgreSQL, MySQL/MariaDB, Redshift, Snowflake, BigQuery)",
    connection_model=SqlConnection,
    source_model=SqlSource,
    discover=discover_latest,
    land=_land,
    after_commit=cursor_moves_with_the_landing,
    partitions_name=lambda connection, source_object: None,  # time windows, not dynamic partitions
    nothing_to_load=_nothing_to_load,
    test_connection=connection_check,
    assets=lambda cfg: [build_dataset_asset(cfg, d) for d in datasets(cfg)],
    jobs=_jobs,
    schedules=build_sync_schedules,
    resources=lambda: {"sql": SqlResource()},
)
