"""A corpus of awkward files through the real path (moto S3 -> sensor -> Dagster -> DuckDB),
each with its expected outcome, plus archive / error prefixes and error files."""

import bz2
import gzip
import json

import dagster as dg
import pytest

from tests.dagster_helpers import platform, put, run_requests, tick
from tests.integration.test_s3_file_jobs import rows

pytestmark = pytest.mark.slow  # a dozen files (one of 10 MB) each through its own Dagster run

HEADER = "Id,Name,Employees,Renewal\n"


def job(name, rule, file_name, **src):
    extra = "".join(f", {k}: {json.dumps(v)}" for k, v in src.items())
    return f"""
  {name}:
    connection: files
    source: {{object: {name}, prefix: in/, file_name: {json.dumps(file_name)}, match: {rule}{extra},
              date_formats: ["%Y-%m-%d", "%d.%m.%Y"]}}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {{source: Id, target: external_id}}
      - {{source: Name, target: name}}
      - {{source: Employees, target: employees}}
      - {{source: Renewal, target: renewal_date}}
"""


def config(bucket):
    return (f"connections:\n  files: {{type: s3, bucket: {bucket}, max_decompressed_mb: 16}}\njobs:"
            + job("plain", "starts_with", "plain")
            + job("latin1", "equals", "latin1.csv", encoding="iso-8859-1")
            + job("utf16", "equals", "utf16.csv", encoding="utf-16")
            + job("wrongenc", "equals", "wrongenc.csv")
            + job("gz", "glob", "*.csv.gz")
            + job("bz", "glob", "*.csv.bz2")
            + job("semi", "equals", "semi.txt", delimiter="semicolon", quote="'"))


CASES = {
    # key: (bytes, expected job status, expected names loaded, expected reject rules by line)
    "in/plain_newlines.csv": (HEADER.replace("\n", "\r\n") + 'P1,"Line one\nline two, with ""quotes""",1,2025-01-31\r\nP2,Plain,"1,234",31.01.2025\r\n',
                              "Success", {"P1": "Line one\nline two, with \"quotes\"", "P2": "Plain"}, {}),
    "in/plain_bom.csv": ("\ufeff" + HEADER + "B1,Bom,5,2025-02-01\n", "Success", {"B1": "Bom"}, {}),
    "in/latin1.csv": ((HEADER + "L1,Müller Café,3,2025-02-01\n").encode("iso-8859-1"), "Success", {"L1": "Müller Café"}, {}),
    "in/utf16.csv": ((HEADER + "U1,Ærø Ünïcødé,3,2025-02-01\n").encode("utf-16"), "Success", {"U1": "Ærø Ünïcødé"}, {}),
    "in/plain_ragged.csv": (HEADER + "R1,Ok,1,2025-01-01\nR2,Short\nR3,Long,1,2025-01-01,extra\nR4,Ok too,2,2025-01-01\n",
                            "Partial Success", {"R1": "Ok", "R4": "Ok too"}, {3: ["malformed_row"], 4: ["malformed_row"]}),
    "in/plain_bigfield.csv": (HEADER + "F1," + "x" * (10 << 20) + ",1,2025-01-01\nF2,Small,1,2025-01-01\n",
                              "Partial Success", {"F2": "Small"}, {2: ["max_length"]}),
    "in/plain_header_only.csv": (HEADER, "Success", {}, {}),
    "in/semi.txt": ("Id;Name;Employees;Renewal\nS1;'Semi; colon';'2,500';2025-03-01\n", "Success", {"S1": "Semi; colon"}, {}),
    "in/data.csv.gz": (gzip.compress((HEADER + "G1,Gzipped,1,2025-01-01\n").encode()), "Success", {"G1": "Gzipped"}, {}),
    "in/data.csv.bz2": (bz2.compress((HEADER + "Z1,Bzipped,1,2025-01-01\n").encode()), "Success", {"Z1": "Bzipped"}, {}),
}

def bomb(compressor, inflated=48 << 20) -> bytes:
    """A small file that inflates to `inflated` bytes of rows (built by streaming)."""
    block = b"B1,Bomb,1,2025-01-01\n" * 50000
    parts = [compressor.compress(HEADER.encode())]
    for _ in range(inflated // len(block) + 1):
        parts.append(compressor.compress(block))
    return b"".join(parts + [compressor.flush()])


FAILING = {
    "in/plain_empty.csv": (b"", "the file is empty"),
    "in/wrongenc.csv": ((HEADER + "W1,Müller,1,2025-01-01\n").encode("iso-8859-1"), "not valid utf-8 at byte 30"),
    "in/truncated.csv.gz": (gzip.compress((HEADER + "T1,Cut,1,2025-01-01\n" * 1000).encode())[:-20], "truncated"),
    "in/bomb.csv.gz": (bomb(__import__("zlib").compressobj(9, 8, 31)),
                       "the decompressed size passed the limit: this gzip file inflates to more than 16 MB"),
    "in/bomb.csv.bz2": (bomb(bz2.BZ2Compressor(9)),
                        "limit set by connections.files.max_decompressed_mb (now 16)"),
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, s3_server):
    tmp_path = tmp_path_factory.mktemp("awkward")
    bucket = "t-awkward-files"
    s3_server.client().create_bucket(Bucket=bucket)
    cfg, defs = platform(tmp_path, config(bucket))
    instance = dg.DagsterInstance.ephemeral()
    for key, (body, *_rest) in {**CASES, **FAILING}.items():
        s3_server.client().put_object(Bucket=bucket, Key=key, Body=body if isinstance(body, bytes) else body.encode())
    put(s3_server, bucket, "in/nobody_wants_me.csv", HEADER)
    result = tick(defs, instance, None)
    runs = {r.tags["gsdp/file"]: r for r in result.run_requests}
    assert "in/nobody_wants_me.csv" not in runs, "a file that matches no job is ignored"
    outcomes = {rr.partition_key: res for rr, res in zip(result.run_requests, run_requests(defs, instance, result))}
    return tmp_path, s3_server.client(), bucket, outcomes


def test_each_awkward_file_has_its_expected_outcome(loaded):
    tmp_path, client, bucket, outcomes = loaded
    for key, (_body, status, names, reject_rules) in CASES.items():
        assert outcomes[key].success, key
        uri = f"s3://{bucket}/{key}"
        (got_status,) = rows(tmp_path, f"SELECT status FROM gs_ops.job_runs WHERE source_file = '{uri}'")[0]
        assert got_status == status, key
        load_ids = rows(tmp_path, f"SELECT load_id FROM gs_ops.loads WHERE source_file = '{uri}'")
        for ext, name in names.items():
            assert rows(tmp_path, f"SELECT name FROM gs.company WHERE external_id = '{ext}'") == [(name,)], key
        rej = {line: [r["rule"] for r in json.loads(reasons)] for line, reasons in
               rows(tmp_path, f"SELECT line_number, reasons FROM gs_ops.rejects WHERE source_file = '{uri}'")}
        assert rej == reject_rules, key
        assert len(load_ids) == 1
    assert rows(tmp_path, "SELECT employees, renewal_date::VARCHAR FROM gs.company WHERE external_id IN ('P2', 'S1') ORDER BY 1") == [
        (1234.0, "2025-01-31"), (2500.0, "2025-03-01")], "thousands separators and configured date formats"


def test_unloadable_files_fail_clearly_write_nothing_and_move_to_the_error_prefix(loaded):
    tmp_path, client, bucket, outcomes = loaded
    for key, (_body, message) in FAILING.items():
        assert not outcomes[key].success, key
        uri = f"s3://{bucket}/{key}"
        ((status, error),) = rows(tmp_path, f"SELECT status, error FROM gs_ops.job_runs WHERE source_file = '{uri}'")
        assert status == "Failed" and message in error and uri in error, (key, error)
        name = key.split("/")[-1]
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="in/error/").get("Contents", [])}
        assert f"in/error/{name}" in keys and f"in/error/{name}.errors.csv" in keys, key
    assert rows(tmp_path, "SELECT count(*) FROM gs.company WHERE external_id IN ('W1', 'T1')") == [(0,)]


def test_loaded_files_move_to_the_archive_with_their_error_files(loaded):
    tmp_path, client, bucket, outcomes = loaded
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert not any(k in keys for k in CASES), "every loaded file left the inbound prefix"
    assert {f"in/archive/{k.split('/')[-1]}" for k in CASES} <= keys
    assert "in/nobody_wants_me.csv" in keys
    body = client.get_object(Bucket=bucket, Key="in/archive/plain_ragged.csv.plain.errors.csv")["Body"].read().decode()
    import csv, io
    assert list(csv.reader(io.StringIO(body))) == [
        ["line_number", "Id", "Name", "Employees", "Renewal", "unparsed_row", "reasons"],
        ["3", "", "", "", "", "R2,Short", "row: row could not be parsed: row has 2 fields, the header has 4 (value R2,Short)"],
        ["4", "", "", "", "", "R3,Long,1,2025-01-01,extra",
         "row: row could not be parsed: row has 5 fields, the header has 4 (value R3,Long,1,2025-01-01,extra)"],
    ]
    archived = rows(tmp_path, f"SELECT archived_to, error_files FROM gs_ops.loads WHERE source_file = 's3://{bucket}/in/plain_ragged.csv'")
    assert archived == [(f"s3://{bucket}/in/archive/plain_ragged.csv",
                         json.dumps([f"s3://{bucket}/in/archive/plain_ragged.csv.plain.errors.csv"]))]
