"""The engine lands records from any reader: Arrow record batches (an API page, a SQL chunk) land in
the raw table like a prepared CSV file and go through apply_load; a rejected row carries its
location in the source (its id, and its position in the unit)."""

import json
from contextlib import contextmanager

import pyarrow as pa
import pytest

from gs_assets.engine.pipeline import Unit, apply_pending, land_records
from gs_assets.engine.raw_landing import RecordBatches

JOBS = """
connections:
  files: {type: s3, bucket: test-bucket}
jobs:
  companies:
    connection: files
    source: {object: companies}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
      - {source: ARR, target: arr}
"""


def _batches():
    schema = pa.schema([("Id", pa.string()), ("Name", pa.string()), ("ARR", pa.float64())])
    yield pa.record_batch([pa.array(["A1", "A2"]), pa.array(["Acme", "Beta"]), pa.array([100.5, 200.0])], schema=schema)
    yield pa.record_batch([pa.array(["A3", None]), pa.array(["Gamma", "Nobody"]), pa.array([None, 5.0])], schema=schema)


def _land(h, batches, *, id_column="Id", source="https://api.example.test/companies?page=1", etag="p1"):
    @contextmanager
    def records():
        yield RecordBatches(batches, id_column=id_column)

    return land_records(h.warehouse, h.cfg, connection="files", source_object="companies",
                        unit=Unit(source, etag), records=records)


def test_arrow_batches_land_and_apply_like_a_file(harness):
    h = harness(JOBS)
    landed = _land(h, _batches())
    assert landed.status == "landed" and landed.rows_read == 4 and landed.header == ["Id", "Name", "ARR"]
    (res,) = apply_pending(h.warehouse, h.cfg, "company")
    assert (res.inserted, res.rejected) == (3, 1)
    assert sorted(h.rows("SELECT external_id, name, arr FROM gs.company")) == [
        ("A1", "Acme", 100.5), ("A2", "Beta", 200.0), ("A3", "Gamma", None)]
    # The row without an identifier is rejected at its position in the unit (4th record), with its values.
    (line, source_file, values), = h.rows(
        f"SELECT line_number, source_file, original_values FROM gs_ops.rejects WHERE job_run_id = '{res.job_run_id}'")
    assert (line, source_file) == (4, "https://api.example.test/companies?page=1")
    assert json.loads(values) == {"Id": None, "Name": "Nobody", "ARR": "5"}  # Arrow's text of 5.0
    # The same unit again (same source and version) is already landed: no duplicate.
    assert _land(h, _batches()).status == "already_landed"


def test_a_rejected_arrow_row_carries_its_source_id(harness):
    h = harness(JOBS)
    schema = pa.schema([("Id", pa.string()), ("Name", pa.string()), ("ARR", pa.string())])
    batch = pa.record_batch([pa.array(["B1", "B2"]), pa.array(["Ok", "Bad"]), pa.array(["10", "about 40"])], schema=schema)
    assert _land(h, iter([batch])).status == "landed"
    (res,) = apply_pending(h.warehouse, h.cfg, "company")
    assert (res.inserted, res.rejected) == (1, 1)
    (line, source_id, reasons), = h.rows(
        f"SELECT line_number, source_id, reasons FROM gs_ops.rejects WHERE job_run_id = '{res.job_run_id}'")
    assert (line, source_id) == (2, "B2")
    assert json.loads(reasons)[0]["field"] == "arr"


def test_batches_with_other_columns_or_none_fail_the_unit_clearly(harness):
    h = harness(JOBS)
    other = pa.record_batch([pa.array(["x"]), pa.array(["y"])], names=["Id", "Title"])
    first = next(_batches())
    res = _land(h, iter([first, other]), etag="p2")
    assert res.status == "failed" and "every batch of a unit needs the same columns" in res.error
    res = _land(h, iter([]), etag="p3")
    assert res.status == "failed" and "no records and no columns" in res.error
    res = _land(h, iter([first]), id_column="key", etag="p4")
    assert res.status == "failed" and "the id column 'key' is not among the columns" in res.error
