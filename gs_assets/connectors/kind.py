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
from typing import Any, Callable, Optional

from pydantic import BaseModel

from gs_assets.config.loader import PlatformConfig
from gs_assets.engine.pipeline import LandResult
from resources.warehouse import Warehouse


def _none(*_a, **_k) -> list:
    return []


@dataclass(frozen=True)
class Kind:
    type: str  # the registry key: the `type` of its connections in config
    description: str
    # Its connection config: one member of the `Connection` union (discriminated on `type`); None
    # for a kind that rides on another kind's connections (Bulk API uploads land through S3).
    connection_model: Optional[type[BaseModel]]
    discover: Callable[..., list[Any]]  # units of work of one source (files under a prefix, API windows, ...)
    land: Callable[..., LandResult]  # the reader: lands one unit through the engine
    after_commit: Callable[..., Any]  # once a unit's loads committed (archive a file, advance a cursor)
    assets: Callable[[PlatformConfig], list] = _none  # its source assets
    jobs: Callable[[PlatformConfig], list] = _none  # its Dagster jobs (named by gs_assets.dagster_jobs)
    # its sensors, given the config, every job by name and the warehouse resource
    sensors: Callable[[PlatformConfig, dict, Warehouse], list] = _none
    schedules: Callable[[PlatformConfig], list] = _none
    resources: Callable[[], dict] = dict  # resource key -> resource, built from the environment
