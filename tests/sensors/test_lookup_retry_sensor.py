"""lookup_retry_sensor: requests a run of the destination object when rows wait for a looked-up
record that has arrived since they were tried, and only then; the run retries them."""

import dagster as dg

from gs_assets.connectors.s3_files.reader import file_chunks
from gs_assets.connectors.s3_files.reader import land
from gs_assets.engine.pipeline import apply_pending
from gs_assets.engine.warehouse_setup import sync_object_tables
from tests.dagster_helpers import persistent_instance, platform
from tests.gs_assets.engine.test_lookup_retry import CASES, JOBS, RETRY


def _load(cfg, warehouse, tmp_path, job, text, name):
    j = cfg.jobs[job]
    path = tmp_path / name
    path.write_text(text.lstrip("\n"))
    land(warehouse, cfg, connection=j.connection, source_object=j.source.object, chunks=file_chunks(str(path)),
         name=name, source_file=str(path), etag=name)
    return apply_pending(warehouse, cfg, j.destination)


def _tick(defs, instance):
    sensor = defs.resolve_sensor_def("lookup_retry_sensor")
    return sensor(dg.build_sensor_context(instance=instance, resources={"warehouse": defs.resources["warehouse"]}))


def test_sensor_requests_the_destination_only_when_a_looked_up_object_changed(tmp_path, s3_server):
    cfg, defs = platform(tmp_path, JOBS % {"retry": RETRY})
    instance = persistent_instance(tmp_path)
    wh = defs.resources["warehouse"]
    assert isinstance(_tick(defs, instance), dg.SkipReason), "no warehouse yet: nothing to do"
    with wh.connect() as con:
        sync_object_tables(con, cfg.model)
    (first,) = _load(cfg, wh, tmp_path, "cases", CASES, "cases_1.csv")
    assert first.rejected == 4
    assert isinstance(_tick(defs, instance), dg.SkipReason), "rows wait, but company has no records yet"

    _load(cfg, wh, tmp_path, "companies", "Id,Name\nA1,Acme\n", "companies_1.csv")
    (req,) = _tick(defs, instance)
    assert req.asset_selection == [dg.AssetKey(["gs", "case"])] and req.tags["gsdp/lookup_retry"] == "case"
    assert [r.run_key for r in _tick(defs, instance)] == [req.run_key], "the same change asks for the same run"

    result = defs.resolve_job_def("apply_objects_job").execute_in_process(
        instance=instance, asset_selection=req.asset_selection, tags=req.tags)
    assert result.success
    mat = instance.get_latest_materialization_event(dg.AssetKey(["gs", "case"])).asset_materialization
    # C1 came without a priority: the retry wrote the default, and says so.
    assert (mat.metadata["inserted"].value, mat.metadata["rejected"].value, mat.metadata["defaulted"].value) == (1, 2, 1)
    with wh.read() as con:
        assert con.execute("SELECT rows_read, inserted, rejected, retry_of FROM gs_ops.job_runs "
                           "WHERE retry_of IS NOT NULL").fetchall() == [(3, 1, 2, first.job_run_id)]
    assert isinstance(_tick(defs, instance), dg.SkipReason), "tried since the last change: nothing to request"

    _load(cfg, wh, tmp_path, "companies", "Id,Name\nA2,Beta\n", "companies_2.csv")
    (again,) = _tick(defs, instance)
    assert again.run_key != req.run_key


def test_no_sensor_and_no_job_without_the_option(tmp_path):
    _, defs = platform(tmp_path, JOBS % {"retry": ""})
    assert not any(s.name == "lookup_retry_sensor" for s in defs.sensors)
    assert not any(j.name == "apply_objects_job" for j in defs.jobs)


def test_a_scheduled_job_retries_at_its_time_not_on_the_sensor(tmp_path, s3_server):
    # A scheduled job applies files at its schedule; its waiting rows are retried there too.
    cfg, defs = platform(tmp_path, JOBS % {"retry": RETRY + '\n    schedule: {every: day, at: "02:00"}'})
    instance = persistent_instance(tmp_path)
    wh = defs.resources["warehouse"]
    with wh.connect() as con:
        sync_object_tables(con, cfg.model)
    (first,) = _load_named(cfg, wh, tmp_path)
    assert first.rejected == 4
    _load(cfg, wh, tmp_path, "companies", "Id,Name\nA1,Acme\n", "companies_1.csv")
    assert isinstance(_tick(defs, instance), dg.SkipReason), "the schedule retries, not the sensor"
    (retry,) = apply_pending(wh, cfg, "case", only_jobs={"cases"})  # what the job's scheduled run applies
    assert retry.retry_of == first.job_run_id and retry.inserted == 1


def _load_named(cfg, wh, tmp_path):
    j = cfg.jobs["cases"]
    path = tmp_path / "cases_1.csv"
    path.write_text(CASES.lstrip("\n"))
    land(wh, cfg, connection=j.connection, source_object=j.source.object, chunks=file_chunks(str(path)),
         name=path.name, source_file=str(path), etag="cases_1")
    return apply_pending(wh, cfg, "case", only_jobs={"cases"})
