"""What a connector kind supplies: one folder under gs_assets/connectors/, one entry in the registry.

A kind is a channel (S3 files, Bulk API uploads; REST APIs, SQL databases, inbound events next).
Definitions ask the registry for each kind and collect its assets, jobs, sensors, schedules and
resources; the engine below (prepare, map, lookup, validate, write, ledger) never sees a kind. A
kind's reader lands one unit of work through the engine (`engine.pipeline.land_records`: a
prepared CSV file or Arrow record batches), and the kind says what happens once that unit's loads
have committed (archive a file; advance a cursor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from pydantic import BaseModel

from gs_assets.config.jobs import Job, SourceBase
from gs_assets.config.loader import PlatformConfig
from resources.warehouse import Warehouse


def _none(*_a, **_k) -> list:
    return []


def _nothing_to_load(cfg: PlatformConfig, job: Job) -> str:
    return f"nothing to load from source {job.source.object} of connection {job.connection}"


@dataclass
class ConnectionCheck:
    """What `gsdp connections test NAME` shows: OK with lines a person checks (system, host, the
    account or server reached, ...), or one paragraph saying what failed and what to do."""
    summary: str  # "connection sfdc (Salesforce, production, auth method refresh_token)"
    lines: list[tuple[str, str]]
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


class UnitNotFound(Exception):
    """A unit of work someone named (a file for a dry run) that the kind cannot find or read."""


# What the callables get (the callers, chains, `gsdp run`, object assets, are the same for every kind):
#   resources: {resource key: what a run's context holds for it (`context.resources.<key>`, e.g.
#              a boto3 client for an S3Resource)} for the keys of the kind's `resources`; outside
#              Dagster the same, from dagster.build_resources(kind.resources());
#   a unit is named by its key, the partition key of its source asset (dynamic partitions
#   `partitions_name(connection, source_object)`).


@dataclass(frozen=True)
class Kind:
    type: str  # the registry key: the `type` of its connections in config
    description: str
    # Its connection config: one member of the `Connection` union (discriminated on `type`); None
    # for a kind that rides on another kind's connections (Bulk API uploads land through S3).
    connection_model: Optional[type[BaseModel]]
    # discover(cfg, job, resources) -> keys of the units of work the job's source holds now, in load
    # order (files under a prefix, API windows, ...)
    discover: Callable[..., list[Any]]
    # land(context, cfg, warehouse, resources, connection, source_object, key) -> the metadata of the
    # source asset's materialization of that unit, with "error" when it could not be landed: the
    # reader lands one unit through the engine (engine.pipeline.land_records)
    land: Callable[..., dict]
    # after_commit(warehouse, cfg, resources, destination, log): the loads into `destination` have
    # committed; finish the kind's units that fed them (archive a file, advance a cursor)
    after_commit: Callable[..., Any]
    # Its jobs' source config (a SourceBase): validates the `source` of every job on its connections.
    source_model: Optional[type[SourceBase]] = None
    # (connection, source_object) -> the name of the dynamic partitions of that source's units (None:
    # its partitions are fixed, e.g. time windows, and callers add none)
    partitions_name: Callable[[str, str], Optional[str]] = lambda connection, source_object: f"units__{connection}__{source_object}"
    # (cfg, job) -> what `gsdp run JOB` says when discover found nothing
    nothing_to_load: Callable[[PlatformConfig, Job], str] = _nothing_to_load
    # dry_run(warehouse, cfg, job, resources, unit, preview_rows) -> a result with .render() and
    # .ok (`gsdp test-run`); raises UnitNotFound for a unit it cannot read. None: not offered.
    dry_run: Optional[Callable[..., Any]] = None
    # test_connection(cfg, name) -> ConnectionCheck (`gsdp connections test NAME`); None: not offered
    test_connection: Optional[Callable[[PlatformConfig, str], ConnectionCheck]] = None
    assets: Callable[[PlatformConfig], list] = _none  # its source assets
    jobs: Callable[[PlatformConfig], list] = _none  # its Dagster jobs (named by gs_assets.dagster_jobs)
    # its sensors, given the config, every job by name and the warehouse resource
    sensors: Callable[[PlatformConfig, dict, Warehouse], list] = _none
    schedules: Callable[[PlatformConfig], list] = _none
    resources: Callable[[], dict] = dict  # resource key -> resource, built from the environment

    @property
    def resource_keys(self) -> frozenset[str]:
        """The keys of its resources (what an op or asset running its callables requires)."""
        return frozenset(self.resources())


def resources_of(kind: Kind, context) -> Mapping[str, Any]:
    """The kind's resources as a run's context holds them (its op or asset requires their keys)."""
    return {key: getattr(context.resources, key) for key in kind.resource_keys}
