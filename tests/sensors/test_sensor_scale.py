"""The sensor at scale: StartAfter listing windows, a per-tick cap, and S3 event notifications via SQS."""

import json

import boto3
import dagster as dg

from gs_assets.connectors.s3_files.assets import source_objects
from gs_assets.connectors.s3_files.sensor import plan_file_runs
from tests.dagster_helpers import platform, put, tick

JOBS = """
connections:
  files: {type: s3, bucket: %(bucket)s}
jobs:
  usage:
    connection: files
    source: {object: usage, prefix: in/, file_name: "usage_{yyyy}-{MM}-{dd}.csv", match: date_pattern,
             listing: %(listing)s, listing_window: 5 %(extra)s}
    destination: company_usage
    operation: upsert
    identifiers: [company_id, usage_date, feature]
    mappings:
      - {source: $file_date, target: usage_date}
      - {source: Feature, target: feature}
    lookups:
      - {target: company_id, object: company, match: [{source: Account, field: external_id}]}
"""


def count_listing(client):
    seen = {"requests": 0, "keys": 0, "params": []}
    real = client._make_api_call

    def wrapped(op, params):
        out = real(op, params)
        if op == "ListObjectsV2":
            seen["requests"] += 1
            seen["keys"] += len(out.get("Contents", []))
            seen["params"].append(params)
        return out

    client._make_api_call = wrapped
    return seen


def test_start_after_lists_only_the_recent_window_and_catches_late_files(tmp_path, s3_server, bucket):
    cfg, _ = platform(tmp_path, JOBS % {"bucket": bucket, "listing": "start_after", "extra": ""})
    sources = source_objects(cfg)
    client = s3_server.client()
    for d in range(1, 31):
        put(s3_server, bucket, f"in/usage_2026-01-{d:02d}.csv", "Account,Feature\n")
    planned, state = plan_file_runs(cfg, sources, client, {})
    assert len(planned) == 30
    st = state["source/files/usage"]
    assert sorted(st["etags"]) == [f"in/usage_2026-01-{d:02d}.csv" for d in range(26, 31)]
    assert st["after"] == "in/usage_2026-01-25.csv"

    put(s3_server, bucket, "in/usage_2026-02-01.csv", "Account,Feature\n")   # new
    put(s3_server, bucket, "in/usage_2026-01-28.csv", "Account,Feature\nA,x\n")  # late re-upload inside the window
    seen = count_listing(client)
    planned, state = plan_file_runs(cfg, sources, client, state)
    assert sorted(p.key for p in planned) == ["in/usage_2026-01-28.csv", "in/usage_2026-02-01.csv"]
    assert seen["requests"] == 1 and seen["keys"] == 6, "only the window and the new key are listed"
    assert "in/usage_2026-01-25.csv" < seen["params"][0]["StartAfter"] < "in/usage_2026-01-26.csv"
    planned, _ = plan_file_runs(cfg, sources, client, state)
    assert planned == []


def test_the_cap_per_tick_defers_the_rest_and_the_cursor_only_holds_requested_files(tmp_path, s3_server, bucket):
    cfg, _ = platform(tmp_path, JOBS % {"bucket": bucket, "listing": "full", "extra": ""})
    sources = source_objects(cfg)
    for d in range(1, 6):
        put(s3_server, bucket, f"in/usage_2026-01-{d:02d}.csv", "Account,Feature\n")
    got, state = [], {}
    for _ in range(3):
        planned, state = plan_file_runs(cfg, sources, s3_server.client(), state, max_runs=2)
        got.append([p.key[-14:-4] for p in planned])
        assert len(state["source/files/usage"]["etags"]) == sum(len(g) for g in got)
    assert got == [["2026-01-01", "2026-01-02"], ["2026-01-03", "2026-01-04"], ["2026-01-05"]]


def test_sqs_event_notifications_replace_listing(tmp_path, s3_server, bucket):
    kw = dict(endpoint_url=s3_server.endpoint, region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing")
    sqs = boto3.client("sqs", **kw)
    queue = sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3_server.client().put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    cfg, defs = platform(tmp_path, JOBS % {"bucket": bucket, "listing": "sqs", "extra": f", sqs_queue_url: '{queue}'"})
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/usage_2026-03-01.csv", "Account,Feature\n")
    put(s3_server, bucket, "in/usage 2026-03-02.csv", "Account,Feature\n")  # matches no job
    put(s3_server, bucket, "in/usage_2026-03-03.csv", "Account,Feature\n")
    first = tick(defs, instance, None)
    assert sorted(r.partition_key for r in first.run_requests) == ["in/usage_2026-03-01.csv", "in/usage_2026-03-03.csv"]
    assert not tick(defs, instance, first.cursor).run_requests, "messages were consumed"
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    put(s3_server, bucket, "in/usage_2026-03-01.csv", "Account,Feature\nA,x\n")  # re-upload: new ETag
    again = tick(defs, instance, first.cursor)
    assert [r.partition_key for r in again.run_requests] == ["in/usage_2026-03-01.csv"]
    state = json.loads(again.cursor)["source/files/usage"]
    assert set(state["etags"]) == {"in/usage_2026-03-01.csv", "in/usage_2026-03-03.csv"}


def test_sqs_keeps_the_messages_beyond_the_cap_for_later_ticks(tmp_path, s3_server, bucket, monkeypatch):
    """25 files announced, at most 5 runs a tick: every file is requested exactly once, and no
    message is deleted before all its records were planned."""
    import gs_assets.connectors.s3_files.sensor as s3_files
    kw = dict(endpoint_url=s3_server.endpoint, region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing")
    sqs = boto3.client("sqs", **kw)
    queue = sqs.create_queue(QueueName=f"{bucket}-cap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3_server.client().put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    cfg, defs = platform(tmp_path, JOBS % {"bucket": bucket, "listing": "sqs", "extra": f", sqs_queue_url: '{queue}'"})
    monkeypatch.setattr(s3_files, "MAX_RUNS_PER_TICK", 5)
    instance = dg.DagsterInstance.ephemeral()
    files = [f"in/usage_2026-04-{d:02d}.csv" for d in range(1, 26)]
    for key in files:
        put(s3_server, bucket, key, "Account,Feature\n")
    requested, cursor = [], None
    for _ in range(40):  # far more ticks than needed; stops when a tick finds nothing
        result = tick(defs, instance, cursor)
        cursor = result.cursor
        if not result.run_requests:
            break
        assert len(result.run_requests) <= 5
        requested += [r.partition_key for r in result.run_requests]
    assert sorted(requested) == files, "every announced file is requested exactly once"
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
