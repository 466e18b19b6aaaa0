"""Notifications: run status sensors mail (to a local SMTP server) and post (to a local HTTP
receiver) what each run did, for the jobs and events each notification asks for."""

import json
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import hold_warehouse
from tests.dagster_helpers import free_port, persistent_instance, platform, put

JOBS = """
connections:
  crm: {type: s3, bucket: %(bucket)s}
jobs:
  companies:
    connection: crm
    source: {object: companies, prefix: in/, file_name: "companies*.csv", match: glob}
    destination: company
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
      - {source: Stage, target: stage}
  users:
    connection: crm
    source: {object: users, prefix: in/, file_name: "users*.csv", match: glob}
    destination: user
    identifiers: [email]
    mappings:
      - {source: Email, target: email}
      - {source: Name, target: name}
notifications:
  ops:
    events: [success, failure]
    email: {to: [ops@example.com, lead@example.com], from: gsdp@example.com}
    webhook: {url_env: GSDP_TEST_HOOK}
  users_only:
    events: [failure]
    jobs: [users]
    webhook: {url: "%(hook)s"}
"""


class _Sink:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch):
    sink, port = _Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("GSDP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("GSDP_SMTP_PORT", str(port))
    yield sink
    controller.stop()


@pytest.fixture
def receiver():
    """An HTTP receiver that records JSON bodies; `fail_first` requests get 503 with Retry-After."""
    state = {"bodies": [], "fail_first": 0, "calls": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            state["calls"] += 1
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state["calls"] <= state["fail_first"]:
                self.send_response(503)
                self.send_header("Retry-After", "0")
                self.end_headers()
                return
            state["bodies"].append((self.path, json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()


def _run(tmp_path, defs, job_name, key):
    instance = persistent_instance(tmp_path)
    part = f"files__crm__{job_name}"
    instance.add_dynamic_partitions(part, [key])
    result = defs.resolve_job_def(f"{job_name}_job").execute_in_process(partition_key=key, instance=instance,
                                                                         raise_on_error=False)
    return instance, result


def _evaluate(defs, instance, result, sensor_name):
    run = instance.get_run_by_id(result.run_id)
    event = result.get_run_success_event() if result.success else result.get_run_failure_event()
    ctx = dg.build_run_status_sensor_context(sensor_name=sensor_name, dagster_event=event, dagster_instance=instance,
                                             dagster_run=run, resources={"warehouse": defs.resources["warehouse"],
                                                                                  "smtp": defs.resources["smtp"]})
    sensor = next(s for s in defs.sensors if s.name == sensor_name)
    return sensor(ctx.for_run_failure() if not result.success else ctx)


def test_success_mails_and_posts_the_job_runs(tmp_path, s3_server, bucket, smtp, receiver, monkeypatch):
    monkeypatch.setenv("GSDP_TEST_HOOK", receiver["url"] + "/hooks/secret-token")
    _, defs = platform(tmp_path, JOBS % {"bucket": bucket, "hook": receiver["url"] + "/users"})
    put(s3_server, bucket, "in/companies_1.csv", "Id,Name,Stage\nA1,Acme,Launched\nA2,Beta,Onboarding\n")
    instance, result = _run(tmp_path, defs, "companies", "in/companies_1.csv")
    assert result.success
    _evaluate(defs, instance, result, "notify_on_success_sensor")
    (rcpts, msg), = smtp.messages
    assert rcpts == ["ops@example.com", "lead@example.com"]
    assert msg["Subject"] == "[gsdp] Partial Success: companies"
    body = msg.get_payload()
    assert "companies <- s3://" in body and "inserted 1" in body and "rejected 1" in body and "gsdp rejects " in body
    (path, payload), = receiver["bodies"]  # only 'ops' listens to success
    assert path == "/hooks/secret-token" and payload["event"] == "job_run.success"
    assert payload["job_runs"][0]["job"] == "companies" and payload["job_runs"][0]["rejected"] == 1


def test_a_busy_warehouse_still_lets_the_notice_out_without_counts(tmp_path, s3_server, bucket, smtp, receiver, monkeypatch):
    # Dagster never evaluates a run status sensor again for a run: waiting too long would lose the notice.
    monkeypatch.setenv("GSDP_TEST_HOOK", receiver["url"] + "/ops")
    monkeypatch.setenv("GSDP_SENSOR_WAREHOUSE_WAIT_SECONDS", "0.5")
    _, defs = platform(tmp_path, JOBS % {"bucket": bucket, "hook": receiver["url"] + "/users"})
    put(s3_server, bucket, "in/companies_1.csv", "Id,Name,Stage\nA1,Acme,Launched\n")
    instance, result = _run(tmp_path, defs, "companies", "in/companies_1.csv")
    assert result.success
    writer = hold_warehouse(tmp_path / "wh.duckdb", seconds=600)  # held until killed below
    try:
        _evaluate(defs, instance, result, "notify_on_success_sensor")
    finally:
        writer.kill()
    (_, msg), = smtp.messages
    assert msg["Subject"] == "[gsdp] Success: companies_job"
    assert "job-run counts unavailable" in msg.get_payload() and result.run_id in msg.get_payload()
    (path, payload), = receiver["bodies"]
    assert path == "/ops" and payload["job_runs"] == [] and "gsdp activity" in payload["error"]


def test_failure_reaches_every_matching_notification_with_the_error(tmp_path, s3_server, bucket, smtp, receiver, monkeypatch):
    monkeypatch.setenv("GSDP_TEST_HOOK", receiver["url"] + "/ops")
    receiver["fail_first"] = 1  # the first POST gets a 503: it is retried
    _, defs = platform(tmp_path, JOBS % {"bucket": bucket, "hook": receiver["url"] + "/users"})
    put(s3_server, bucket, "in/users_1.csv", "Mail,Name\nann@x.io,Ann\n")  # lacks the mapped 'Email'
    instance, result = _run(tmp_path, defs, "users", "in/users_1.csv")
    assert not result.success
    _evaluate(defs, instance, result, "notify_on_failure_sensor")
    (_, msg), = smtp.messages
    assert msg["Subject"] == "[gsdp] Failed: users" and "Email" in msg.get_payload()
    assert sorted(p for p, _ in receiver["bodies"]) == ["/ops", "/users"]
    assert all(b["event"] == "job_run.failure" and "Email" in json.dumps(b) for _, b in receiver["bodies"])


def test_a_receiver_that_keeps_failing_fails_the_tick_without_leaking_the_url(tmp_path, s3_server, bucket, smtp, receiver,
                                                                               monkeypatch):
    monkeypatch.setenv("GSDP_TEST_HOOK", receiver["url"] + "/hooks/secret-token")
    receiver["fail_first"] = 10
    _, defs = platform(tmp_path, JOBS % {"bucket": bucket, "hook": receiver["url"] + "/users"})
    put(s3_server, bucket, "in/companies_1.csv", "Id,Name,Stage\nA1,Acme,Launched\n")
    instance, result = _run(tmp_path, defs, "companies", "in/companies_1.csv")
    with pytest.raises(Exception) as e:
        _evaluate(defs, instance, result, "notify_on_success_sensor")
    assert "POST to the URL in GSDP_TEST_HOOK failed after 3 attempt(s): HTTP 503" in str(e.value)
    assert "secret-token" not in str(e.value)
    assert len(smtp.messages) == 1  # the mail still went out


# A webhook URL from `url_env` that urllib refuses (no scheme, a space): its token must never show.
BAD_HOOKS = ["hooks.example.com/T0KEN-SECRET", "https://hooks.example.com/T0KEN SECRET"]


def _no_secret(text: str) -> None:
    for part in ("T0KEN", "SECRET", "hooks.example.com"):
        assert part not in text, text


@pytest.mark.parametrize("value", BAD_HOOKS)
def test_a_bad_webhook_url_in_its_env_var_fails_config_load_without_echoing_it(tmp_path, bucket, monkeypatch, value):
    import traceback
    from gs_assets.validators.errors import ConfigError
    monkeypatch.setenv("GSDP_TEST_HOOK", value)
    with pytest.raises(ConfigError) as e:
        platform(tmp_path, JOBS % {"bucket": bucket, "hook": "http://127.0.0.1:9/users"})
    assert e.value.file.endswith("jobs.yaml") and e.value.key == "notifications.ops.webhook.url_env"
    assert "GSDP_TEST_HOOK" in e.value.message
    _no_secret("".join(traceback.format_exception(e.value)))


@pytest.mark.parametrize("value", BAD_HOOKS)
def test_a_bad_webhook_url_in_config_fails_load_without_echoing_it(tmp_path, bucket, value):
    import traceback
    from gs_assets.validators.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        platform(tmp_path, JOBS % {"bucket": bucket, "hook": value})
    assert e.value.file.endswith("jobs.yaml") and e.value.key == "notifications.users_only.webhook.url"
    _no_secret("".join(traceback.format_exception(e.value)))


@pytest.mark.parametrize("value", BAD_HOOKS)
def test_a_bad_webhook_url_set_after_load_blocks_no_other_recipient_and_leaks_nothing(
        tmp_path, s3_server, bucket, smtp, receiver, monkeypatch, caplog, capfd, value):
    import logging
    import traceback
    monkeypatch.delenv("GSDP_TEST_HOOK", raising=False)  # unset at load: checked at delivery
    _, defs = platform(tmp_path, JOBS % {"bucket": bucket, "hook": receiver["url"] + "/users"})
    monkeypatch.setenv("GSDP_TEST_HOOK", value)
    put(s3_server, bucket, "in/users_1.csv", "Mail,Name\nann@x.io,Ann\n")  # lacks the mapped 'Email'
    instance, result = _run(tmp_path, defs, "users", "in/users_1.csv")
    assert not result.success
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as e:
        _evaluate(defs, instance, result, "notify_on_failure_sensor")  # 'ops' (bad hook) comes first
    assert "GSDP_TEST_HOOK" in str(e.value) and "ops" in str(e.value)
    assert [p for p, _ in receiver["bodies"]] == ["/users"]  # the other notification still got its POST
    assert len(smtp.messages) == 1  # and the mail of 'ops' went out
    logged = caplog.text + "".join(capfd.readouterr())  # the sensor's log goes to stderr
    assert "GSDP_TEST_HOOK is not a usable webhook URL" in logged  # logged, by the variable's name
    _no_secret("".join(traceback.format_exception(e.value)) + logged)


def test_redact_cuts_urls_and_the_parts_of_a_url_from_env(tmp_path, bucket, monkeypatch):
    from sensors.notifications import _secrets, redact
    monkeypatch.setenv("GSDP_SMTP_PASSWORD", "pw-SECRET-smtp")
    cfg, _ = platform(tmp_path, JOBS % {"bucket": bucket, "hook": "http://127.0.0.1:9/users"})
    monkeypatch.setenv("GSDP_TEST_HOOK", "https://bot:T0KEN@hooks.example.com/a/T0KEN SECRET?sig=SECRET2")
    text = redact("URL can't contain control characters. '/a/T0KEN SECRET' (found at least ' '); "
                  "POST https://bot:T0KEN@hooks.example.com/a/T0KEN%20SECRET?sig=SECRET2 failed; "
                  "login pw-SECRET-smtp refused; file s3://b/in/users_1.csv", _secrets(cfg))
    _no_secret(text.replace("https://hooks.example.com/…", ""))
    assert "https://hooks.example.com/…" in text and "pw-SECRET" not in text and "s3://b/in/users_1.csv" in text


def test_an_smtp_error_does_not_leak_the_password(tmp_path, s3_server, bucket, receiver, monkeypatch):
    import traceback
    from aiosmtpd.smtp import AuthResult

    def echoing(server, session, envelope, mechanism, auth_data):  # a server that echoes what it got
        return AuthResult(success=False, handled=False,
                          message=f"535 5.7.8 bad credentials {auth_data.login.decode()} {auth_data.password.decode()}")

    port = free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port, authenticator=echoing, auth_require_tls=False)
    controller.start()
    try:
        monkeypatch.setenv("GSDP_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("GSDP_SMTP_PORT", str(port))
        monkeypatch.setenv("GSDP_SMTP_USER", "gsdp")
        monkeypatch.setenv("GSDP_SMTP_PASSWORD", "pw-SECRET-smtp")
        monkeypatch.setenv("GSDP_TEST_HOOK", receiver["url"] + "/ops")
        _, defs = platform(tmp_path, JOBS % {"bucket": bucket, "hook": receiver["url"] + "/users"})
        put(s3_server, bucket, "in/companies_1.csv", "Id,Name,Stage\nA1,Acme,Launched\n")
        instance, result = _run(tmp_path, defs, "companies", "in/companies_1.csv")
        with pytest.raises(Exception) as e:
            _evaluate(defs, instance, result, "notify_on_success_sensor")
    finally:
        controller.stop()
    text = "".join(traceback.format_exception(e.value))
    assert "mail to ops@example.com" in text and "pw-SECRET-smtp" not in text
    assert [p for p, _ in receiver["bodies"]] == ["/ops"]


FILTERED = JOBS + """
  companies_only:
    events: [failure]
    jobs: [companies]
    webhook: {url: "%(hook)s/companies"}
"""


@pytest.mark.parametrize("dagster_job", ["users_job", "load_crm__users_job"])
def test_a_run_that_fails_before_any_job_run_is_logged_reaches_its_jobs_notifications(
        tmp_path, s3_server, bucket, smtp, receiver, monkeypatch, dagster_job):
    # The file is gone before the run starts: the run fails with no gs_ops.job_runs row.
    monkeypatch.setenv("GSDP_TEST_HOOK", receiver["url"] + "/ops")
    _, defs = platform(tmp_path, FILTERED % {"bucket": bucket, "hook": receiver["url"] + "/users"})
    instance = persistent_instance(tmp_path)
    instance.add_dynamic_partitions("files__crm__users", ["in/users_gone.csv"])
    result = defs.resolve_job_def(dagster_job).execute_in_process(partition_key="in/users_gone.csv", instance=instance,
                                                                  raise_on_error=False)
    assert not result.success
    _evaluate(defs, instance, result, "notify_on_failure_sensor")
    assert sorted(p for p, _ in receiver["bodies"]) == ["/ops", "/users"]  # not /companies (another job)
    for _, body in receiver["bodies"]:
        assert body["event"] == "job_run.failure" and body["job_runs"] == [] and "users_gone.csv" in body["error"]


def test_the_jobs_of_a_run_come_from_its_tags_job_name_or_asset_selection(tmp_path, bucket):
    from types import SimpleNamespace
    from sensors.notifications import run_jobs
    cfg, _ = platform(tmp_path, FILTERED % {"bucket": bucket, "hook": "http://127.0.0.1:9/users"} + """
chains:
  nightly: {jobs: [companies]}
""")

    def run(job_name, tags=None, assets=None):
        return SimpleNamespace(job_name=job_name, tags=tags or {}, asset_selection=assets)

    assert run_jobs(cfg, run("users_job", {"gsdp/job": "users"})) == {"users"}
    assert run_jobs(cfg, run("load_crm__users_job", {"gsdp/source": "source/crm/users"})) == {"users"}
    assert run_jobs(cfg, run("nightly_chain_job", {"gsdp/chain": "nightly"})) == {"nightly", "companies"}
    assert run_jobs(cfg, run("companies_job")) == {"companies"}  # a run without tags (recovered, old)
    assert run_jobs(cfg, run("load_crm__companies_job")) == {"companies"}
    assert run_jobs(cfg, run("nightly_chain_job")) == {"nightly", "companies"}
    assert run_jobs(cfg, run("__ASSET_JOB", assets={dg.AssetKey(["source", "crm", "users"]),
                                                   dg.AssetKey(["gs", "user"])})) == {"users"}
    assert run_jobs(cfg, run("__ASSET_JOB", assets={dg.AssetKey(["gs", "company"])})) == {"companies"}
    assert run_jobs(cfg, run("something_else")) == set()


def test_a_run_failed_by_the_run_recovery_sensor_reaches_its_jobs_notifications(tmp_path, bucket, smtp, receiver,
                                                                                  monkeypatch):
    import os
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
    from sensors.run_recovery import build_run_recovery_sensor
    import subprocess
    import sys
    monkeypatch.setenv("GSDP_TEST_HOOK", receiver["url"] + "/ops")
    _, defs = platform(tmp_path, FILTERED % {"bucket": bucket, "hook": receiver["url"] + "/users"})
    instance = persistent_instance(tmp_path)
    # A run of the source job whose process was killed (SIGKILL, OOM) before it logged a job run.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = instance.add_run(dg.DagsterRun(job_name="load_crm__users_job", status=dg.DagsterRunStatus.STARTED,
                                         run_id=os.urandom(16).hex()[:8] + "-0000-0000-0000-000000000000"))
    instance.report_dagster_event(DagsterEvent(event_type_value=DagsterEventType.ENGINE_EVENT.value, job_name=run.job_name,
                                               message="Started process for run", event_specific_data=EngineEventData({}),
                                               pid=gone.pid), run_id=run.run_id)
    build_run_recovery_sensor()(dg.build_sensor_context(instance=instance))
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    event = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records[0].event_log_entry
    ctx = dg.build_run_status_sensor_context(sensor_name="notify_on_failure_sensor", dagster_event=event.dagster_event,
                                             dagster_instance=instance, dagster_run=failed,
                                             resources={"warehouse": defs.resources["warehouse"],
                                                        "smtp": defs.resources["smtp"]})
    next(s for s in defs.sensors if s.name == "notify_on_failure_sensor")(ctx.for_run_failure())
    assert sorted(p for p, _ in receiver["bodies"]) == ["/ops", "/users"]  # not /companies
    assert all("Re-execute the run" in b["error"] for _, b in receiver["bodies"])


def test_a_busy_warehouse_sends_a_failure_only_to_the_notifications_of_the_runs_jobs(tmp_path, s3_server, bucket, smtp,
                                                                                       receiver, monkeypatch):
    monkeypatch.setenv("GSDP_TEST_HOOK", receiver["url"] + "/ops")
    monkeypatch.setenv("GSDP_SENSOR_WAREHOUSE_WAIT_SECONDS", "0.5")
    _, defs = platform(tmp_path, FILTERED % {"bucket": bucket, "hook": receiver["url"] + "/users"})
    put(s3_server, bucket, "in/users_1.csv", "Mail,Name\nann@x.io,Ann\n")  # lacks the mapped 'Email'
    instance, result = _run(tmp_path, defs, "users", "in/users_1.csv")
    assert not result.success
    writer = hold_warehouse(tmp_path / "wh.duckdb")
    try:
        _evaluate(defs, instance, result, "notify_on_failure_sensor")
    finally:
        writer.kill()
    assert sorted(p for p, _ in receiver["bodies"]) == ["/ops", "/users"]  # not /companies
    assert all("job-run counts unavailable" in b["error"] for _, b in receiver["bodies"])
