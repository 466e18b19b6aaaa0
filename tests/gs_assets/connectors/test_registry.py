"""Connector kinds: one registry keyed by the connection's `type`. Adding a kind is one folder and one
registry entry: a fake kind registered here is validated in config and wired into the definitions."""

from typing import Literal

import dagster as dg
import pytest
from pydantic import BaseModel, ConfigDict

from gs_assets.config.loader import load_platform_config
from gs_assets.connectors import registry
from gs_assets.connectors.kind import Kind
from gs_assets.validators.errors import ConfigError
from tests.conftest import write_config


class FakeConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["fake"]
    url: str


class FakeResource(dg.ConfigurableResource):
    url: str = ""


def _fake_kind() -> Kind:
    def assets(cfg):
        out = []
        for name, conn in cfg.connections.items():
            if conn.type == "fake":
                @dg.asset(key=["source", name, "events"], group_name=name)
                def _events(fake: FakeResource):
                    return None
                out.append(_events)
        return out

    def jobs(cfg):
        return [dg.define_asset_job("fake_events_job", selection=dg.AssetSelection.groups(
            *[n for n, c in cfg.connections.items() if c.type == "fake"]))]

    def sensors(cfg, jobs_by_name, warehouse):
        @dg.sensor(name="fake_events_sensor", job=jobs_by_name["fake_events_job"])
        def _sensor(context):
            return dg.SkipReason("nothing new")
        return [_sensor]

    def schedules(cfg):
        return [dg.ScheduleDefinition(name="fake_events_schedule", cron_schedule="0 * * * *", job_name="fake_events_job")]

    return Kind(type="fake", description="a fake kind for the registry test", connection_model=FakeConnection,
                discover=lambda *a: [], land=lambda *a, **k: None, after_commit=lambda *a, **k: None,
                assets=assets, jobs=jobs, sensors=sensors, schedules=schedules,
                resources=lambda: {"fake": FakeResource(url="http://127.0.0.1:1")})


@pytest.fixture
def fake_kind():
    kind = registry.register(_fake_kind())
    yield kind
    registry.unregister("fake")


CONFIG = """
connections:
  files: {type: s3, bucket: test-bucket}
  events: {type: fake, url: "http://127.0.0.1:1/events"}
jobs:
  users:
    connection: files
    source: {object: users}
    destination: user
    identifiers: [email]
    mappings:
      - {source: Email, target: email}
      - {source: Name, target: name}
"""


def test_the_built_in_kinds_are_registered_by_connection_type():
    assert {"s3", "bulk_upload"} <= set(registry.KINDS)
    assert registry.KINDS["s3"].connection_model.model_fields["type"].annotation == Literal["s3"]


def test_a_registered_kind_is_validated_in_config_and_wired_into_definitions(fake_kind, tmp_path):
    from gs_assets.definitions import build_definitions

    cfg = load_platform_config(write_config(tmp_path / "config", CONFIG))
    assert isinstance(cfg.connections["events"], FakeConnection)
    assert registry.kind_of(cfg.connections["events"]) is fake_kind
    assert registry.kind_of(cfg.connections["files"]).type == "s3"
    defs = build_definitions(cfg, warehouse=str(tmp_path / "wh.duckdb"))
    keys = {a.key.to_user_string() for a in defs.assets}
    assert {"source/events/events", "source/files/users", "gs/user"} <= keys
    assert "fake_events_job" in {j.name for j in defs.jobs}
    assert {"fake_events_sensor", "s3_files_sensor"} <= {s.name for s in defs.sensors}
    assert "fake_events_schedule" in {s.name for s in defs.schedules}
    assert {"fake", "s3", "warehouse"} <= set(defs.resources)
    defs.get_repository_def().get_all_jobs()  # everything resolves (jobs, sensors, schedules, resources)

    bad = CONFIG.replace('url: "http://127.0.0.1:1/events"', "uri: x")
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "bad", bad))
    assert "connections.events.uri: unknown key 'uri'" in str(e.value)
    assert "connections.events.url: Field required" in str(e.value)


def test_without_the_kind_its_connection_type_is_unknown(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "config", CONFIG))
    assert "connections.events" in str(e.value)
