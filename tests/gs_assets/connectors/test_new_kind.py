"""Adding a connector kind means adding one folder and one registry entry: a throwaway kind, defined
here alone (its connection and source models, discovery, a reader landing Arrow record batches, an
after-commit step, its source assets), loads a job of its kind from config, is wired into the
definitions, and `gsdp run JOB` and a chain load its records into an object, with no edit
anywhere else. Plus the config errors for an unknown connection type and a source that does not
fit its kind."""

from contextlib import contextmanager
from typing import Literal

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
from pydantic import ConfigDict

from gs_assets.cli import main
from gs_assets.config.jobs import ConnectionBase, SourceBase, job_json_schema
from gs_assets.config.loader import load_platform_config
from gs_assets.connectors import registry
from gs_assets.connectors.kind import Kind
from gs_assets.engine.pipeline import Unit, jobs_reading, land_records
from gs_assets.engine.raw_landing import RecordBatches
from gs_assets.engine.warehouse_setup import ensure_tables
from gs_assets.validators.errors import ConfigError
from resources.warehouse import Warehouse
from tests.conftest import write_config

# The "system" the kind reads: pages of records per (connection, table), each page a unit of work.
PAGES: dict[tuple[str, str], dict[str, list[dict]]] = {}
FINISHED: list[tuple[str, str]] = []  # (connection, destination) of every after_commit


class MemoConnection(ConnectionBase):
    model_config = ConfigDict(extra="forbid")
    type: Literal["memo"]
    description: str = ""


class MemoSource(SourceBase):
    model_config = ConfigDict(extra="forbid")
    table: str
    id_column: str = "id"


def _partitions_name(connection: str, source_object: str) -> str:
    return f"memo__{connection}__{source_object}"


def _discover(cfg, job, resources) -> list[str]:
    return sorted(PAGES.get((job.connection, job.source.table), {}))


def _land(context, cfg, warehouse, resources, connection: str, source_object: str, key: str) -> dict:
    ensure_tables(warehouse, cfg.model)
    src = jobs_reading(cfg, connection, source_object)[0].source
    rows = PAGES[(connection, src.table)][key]

    @contextmanager
    def records():
        yield RecordBatches([pa.RecordBatch.from_pylist(rows)], id_column=src.id_column)

    res = land_records(warehouse, cfg, connection=connection, source_object=source_object,
                       unit=Unit(f"memo://{connection}/{src.table}/{key}", etag=key), records=records,
                       run_id=context.run.run_id)
    meta = {"landing": res.status, "dagster/row_count": res.rows_read}
    if res.status == "failed":
        meta["error"] = res.error
    return meta


def _after_commit(warehouse, cfg, resources, destination: str, log=None) -> None:
    FINISHED.extend((j.connection, destination) for j in cfg.jobs_into(destination)
                    if cfg.connections[j.connection].type == "memo")


def _source_asset(cfg, connection: str, name: str) -> dg.AssetsDefinition:
    @dg.asset(key=["source", connection, name], group_name=connection,
              partitions_def=dg.DynamicPartitionsDefinition(name=_partitions_name(connection, name)))
    def _source(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        meta = _land(context, cfg, warehouse, {}, connection, name, context.partition_key)
        if "error" in meta:
            raise dg.Failure(description=meta.pop("error"))
        return dg.MaterializeResult(metadata=meta)
    return _source


def _assets(cfg) -> list:
    return [_source_asset(cfg, c, n) for c, n in sorted({(j.connection, j.source.object) for j in cfg.jobs.values()
                                                          if cfg.connections[j.connection].type == "memo"})]


MEMO = Kind(type="memo", description="records held in memory (a test kind)", connection_model=MemoConnection,
            source_model=MemoSource, discover=_discover, land=_land, after_commit=_after_commit,
            partitions_name=_partitions_name, assets=_assets)


@pytest.fixture
def memo_kind():
    PAGES.clear()
    FINISHED.clear()
    kind = registry.register(MEMO)
    yield kind
    registry.unregister("memo")


CONFIG = """
connections:
  files: {type: s3, bucket: test-bucket}
  people: {type: memo}
jobs:
  memo_users:
    connection: people
    source: {object: users, table: user_table, id_column: uid}
    destination: user
    identifiers: [email]
    mappings:
      - {source: Email, target: email}
      - {source: Name, target: name}
  file_users:
    connection: files
    source: {object: users, prefix: crm/}
    destination: user
    identifiers: [email]
    mappings:
      - {source: Email, target: email}
      - {source: Name, target: name}
chains:
  people_chain:
    jobs: [memo_users]
"""


def _users(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT email, name FROM gs.user ORDER BY email").fetchall()
    finally:
        con.close()


def test_a_kind_added_in_one_place_loads_its_records_through_gsdp_run_and_a_chain(memo_kind, tmp_path, monkeypatch,
                                                                                   capsys):
    from gs_assets.definitions import build_definitions

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    folder = write_config(tmp_path / "config", CONFIG)
    cfg = load_platform_config(folder)
    assert isinstance(cfg.connections["people"], MemoConnection)
    assert isinstance(cfg.jobs["memo_users"].source, MemoSource) and cfg.jobs["memo_users"].source.id_column == "uid"
    assert type(cfg.jobs["file_users"].source).__name__ == "FileSource"  # the S3 kind's jobs are unchanged
    defs = build_definitions(cfg, warehouse=str(tmp_path / "wh.duckdb"))
    assert defs.resolve_assets_def(dg.AssetKey(["source", "people", "users"])) is not None
    assert {"memo_users_job", "people_chain_chain_job"} <= {j.name for j in defs.jobs}
    defs.get_repository_def().get_all_jobs()  # everything resolves
    schema = job_json_schema()  # connections: the union; a job's source: any of the kinds' source models
    assert {"S3Connection", "MemoConnection", "FileSource", "MemoSource"} <= set(schema["$defs"])
    assert {s["$ref"] for s in schema["$defs"]["Job"]["properties"]["source"]["anyOf"]} >= {
        "#/$defs/FileSource", "#/$defs/MemoSource"}

    wh = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("GSDP_CONFIG_DIR", str(folder))  # (`--config` sets these; restored after the test)
    monkeypatch.setenv("GSDP_WAREHOUSE", str(wh))
    PAGES[("people", "user_table")] = {"page-1": [{"uid": "u1", "Email": "ann@example.com", "Name": "Ann"},
                                                  {"uid": "u2", "Email": "bob@example.com", "Name": "Bob"}]}
    args = ["--config", str(folder), "--warehouse", str(wh)]
    assert main([*args, "run", "memo_users"]) == 0, capsys.readouterr()
    assert _users(wh) == [("ann@example.com", "Ann"), ("bob@example.com", "Bob")]
    assert ("people", "user") in FINISHED  # the kind heard that its loads committed

    PAGES[("people", "user_table")]["page-2"] = [{"uid": "u1", "Email": "ann@example.com", "Name": "Ann Lee"}]
    FINISHED.clear()
    assert main([*args, "run", "people_chain"]) == 0, capsys.readouterr()
    assert _users(wh) == [("ann@example.com", "Ann Lee"), ("bob@example.com", "Bob")]
    assert ("people", "user") in FINISHED

    PAGES.clear()
    assert main([*args, "run", "memo_users"]) == 0
    assert "memo_users: nothing to load" in capsys.readouterr().out


def test_a_connection_of_an_unknown_type_fails_at_load_naming_the_key_and_the_known_types(tmp_path):
    text = CONFIG.replace("people: {type: memo}", "people: {type: ftp, host: x}")
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "config", text))
    assert e.value.key == "connections.people.type"
    assert "unknown connection type 'ftp'; known types: rest_api, s3" in str(e.value)


def test_a_source_that_does_not_fit_its_kind_fails_at_load_naming_the_key(memo_kind, tmp_path):
    # an S3 file setting on a memo job, a memo setting on an S3 job: each checked by its own kind's model
    text = CONFIG.replace("source: {object: users, table: user_table, id_column: uid}",
                          "source: {object: users, table: user_table, prefix: crm/}")
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "a", text))
    assert "jobs.memo_users.source.prefix: unknown key 'prefix'; allowed keys: object, table, id_column" in str(e.value)

    text = CONFIG.replace("source: {object: users, prefix: crm/}", "source: {object: users, table: user_table}")
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "b", text))
    assert "jobs.file_users.source.table: unknown key 'table'" in str(e.value)
    assert "allowed keys: object, prefix, file_name" in str(e.value)

    text = CONFIG.replace("source: {object: users, table: user_table, id_column: uid}", "source: {object: users}")
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "c", text))
    assert "jobs.memo_users.source.table: Field required" in str(e.value)
