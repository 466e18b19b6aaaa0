"""Every registered connector kind keeps the contract definitions rely on (parametrised over the
registry, so a new kind is checked the day it is registered): its assets are source objects in
their connection's group, its jobs, sensors and schedules follow the names users see, everything it
supplies reaches the one Definitions, and its resources keep secrets out of what the UI shows."""

import dagster as dg
import pytest

from gs_assets.config.jobs import CONNECTION_MODELS, SOURCE_MODELS, ConnectionBase, SourceBase
from gs_assets.config.loader import load_platform_config
from gs_assets.connectors import registry
from gs_assets.definitions import build_definitions
from tests.conftest import REPO

SECRET = "s3cr3t-never-shown-0123456789"


@pytest.fixture(scope="module")
def shipped():
    """The shipped config (an S3 connection with file jobs and a Bulk API job) and its Definitions."""
    cfg = load_platform_config(REPO / "config")
    return cfg, build_definitions(cfg, warehouse=":memory:")


@pytest.mark.parametrize("kind", registry.kinds(), ids=lambda k: k.type)
def test_a_kind_supplies_what_definitions_expect(kind, shipped):
    cfg, defs = shipped
    assert registry.KINDS[kind.type] is kind and kind.description
    assert callable(kind.discover) and callable(kind.land) and callable(kind.after_commit)
    if kind.connection_model is not None:  # its connections validate as one member of the union
        assert kind.connection_model.model_fields["type"].annotation.__args__ == (kind.type,)

    for asset in kind.assets(cfg):
        for key in asset.keys:
            path = key.path
            assert path[0] == "source" and path[1] in cfg.connections, key
            assert asset.group_names_by_key[key] == path[1], "a source asset sits in its connection's group"
            assert defs.resolve_assets_def(key) is not None

    jobs = kind.jobs(cfg)
    names = {j.name for j in defs.jobs}
    assert all(j.name.endswith("_job") and j.name in names for j in jobs)
    sensors = kind.sensors(cfg, {j.name: j for j in defs.jobs}, defs.resources["warehouse"])
    assert all(s.name.endswith("_sensor") and defs.resolve_sensor_def(s.name) for s in sensors)
    schedules = kind.schedules(cfg)
    assert all(s.name.endswith("_schedule") and defs.resolve_schedule_def(s.name) for s in schedules)


@pytest.mark.parametrize("kind", registry.kinds(), ids=lambda k: k.type)
def test_a_kind_hands_callers_what_they_need_without_knowing_the_kind(kind, shipped):
    """Chains, `gsdp run`, object assets and the demo only use these: the kind's connection and
    source models (registered with config), its units as partitions of its source assets, the
    resources it needs (all in the definitions), and an optional dry run."""
    cfg, defs = shipped
    if kind.connection_model is not None:
        assert issubclass(kind.connection_model, ConnectionBase)
        assert CONNECTION_MODELS[kind.type] is kind.connection_model
        if kind.source_model is not None:
            assert issubclass(kind.source_model, SourceBase) and "object" in kind.source_model.model_fields
            assert SOURCE_MODELS[kind.type] is kind.source_model
    assert kind.resource_keys <= set(defs.resources)
    assert kind.dry_run is None or callable(kind.dry_run)
    for job in cfg.jobs.values():
        if registry.kind_of_job(cfg, job) is not kind:
            continue
        assert isinstance(job.source, kind.source_model)  # validated against its kind's source model
        asset = defs.resolve_assets_def(dg.AssetKey(job.source_asset_path))
        name = kind.partitions_name(job.connection, job.source.object)
        if name is None:  # fixed partitions (time windows): callers add none
            assert not isinstance(asset.partitions_def, dg.DynamicPartitionsDefinition)
        else:
            assert asset.partitions_def.name == name
        assert kind.nothing_to_load(cfg, job)


@pytest.mark.parametrize("kind", registry.kinds(), ids=lambda k: k.type)
def test_a_kinds_resources_keep_secrets_out_of_what_is_shown(kind, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for key, resource in kind.resources().items():
        assert isinstance(resource, dg.ConfigurableResource), key
        assert SECRET not in repr(resource) and SECRET not in str(resource), key
