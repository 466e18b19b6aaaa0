"""Notifications on job success and failure: Dagster run status sensors that mail or post.

When a run ends, the sensor reads what it did from the activity log (`gs_ops.job_runs` rows with
the run's id: job, file, status, counts, error) and tells every configured notification whose
`on` and `jobs` match. Partial Success counts as success (the message gives the rejects and how to
download them). A run that failed before any job run was logged (a systemic error) is still
reported, with Dagster's error, to the notifications of the jobs the run belongs to (from its tags,
its Dagster job name or its asset selection: `run_jobs`).

Delivery: email through the `smtp` resource (resources/smtp.py, from the GSDP_SMTP_* env vars); webhooks as a JSON POST,
retried on connection errors, 429 and 5xx (three attempts, honouring Retry-After up to 5 s). If a
delivery fails after its attempts, the tick fails, so the failure shows in the UI and Dagster
evaluates the run again on the next tick (a recipient that already got it may get it twice).
Each recipient is tried on its own: an error of one (any exception) never keeps the others from
getting theirs; the failures are reported together at the end.
Secrets (SMTP password, webhook URLs) never reach a log or an exception: every message raised or
logged here goes through `redact`, and a webhook URL is named by where it comes from.
"""

import base64
import json
import re
import smtplib
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit
from email.message import EmailMessage
from typing import Optional

from pathlib import Path

import dagster as dg

from gs_assets.config.jobs import Notification, webhook_url_problem
from gs_assets.config.loader import PlatformConfig
from gs_assets.dagster_jobs import chain_job_name, job_asset_job_name, source_job_name
from gs_assets.engine import ledger
from gs_assets.engine.pipeline import jobs_reading
from gs_assets.settings import Settings
from resources.smtp import SmtpResource
from resources.warehouse import Warehouse, WarehouseBusy

COLUMNS = ["job_run_id", "job", "destination", "source_file", "status", "rows_read", "inserted", "updated",
           "unchanged", "rejected", "filtered", "superseded", "aggregated", "deleted", "error", "started_at", "ended_at"]


class DeliveryError(RuntimeError):
    pass


_URL = re.compile(r"(?i)\b(https?)://([^\s/?#'\"<>]*)[^\s'\"<>]*")


def _secrets(cfg: Optional[PlatformConfig] = None, smtp: Optional[SmtpResource] = None) -> list[str]:
    """The values no message may hold: the SMTP password (also as sent in AUTH), every webhook URL,
    and the parts of a URL from `url_env` that may carry a token (credentials, path, query, and
    each word of them, as urllib quotes a path with a space). Without `smtp`, the one the settings give."""
    out: list[str] = []
    settings = Settings.from_env()
    pw = (smtp.password if smtp else settings.smtp_password and settings.smtp_password.get_secret_value()) or ""
    user = (smtp.user if smtp else settings.smtp_user) or ""
    if pw:
        out += [pw, base64.b64encode(pw.encode()).decode(), base64.b64encode(f"\0{user}\0{pw}".encode()).decode()]
    for note in (cfg.notifications.values() if cfg else []):
        if note.webhook is None:
            continue
        if note.webhook.url is not None:
            out.append(note.webhook.url)
            continue
        url = _env_url(note, settings)
        pieces = [url, url.strip()]
        try:
            u = urlsplit(url.strip())
            pieces += [u.path, u.query, u.fragment]
            pieces += [u.netloc, u.username or "", u.password or ""] if "@" in u.netloc else []
        except ValueError:
            pass
        pieces += [w for p in pieces for w in p.split()]
        out += [p for p in pieces if len(p) >= 4]
    return sorted(set(out), key=len, reverse=True)


def _env_url(note: Notification, settings: Optional[Settings] = None) -> str:
    """The webhook URL in the variable `url_env` names ('' when unset)."""
    secret = (settings or Settings.from_env()).named_secret(note.webhook.url_env or "")
    return secret.get_secret_value() if secret else ""


def redact(text: str, secrets: list[str] = ()) -> str:
    """`text` with every http(s) URL cut to scheme and host (`https://host/…`) and every secret
    value (see `_secrets`) replaced by `…`."""
    text = _URL.sub(lambda m: f"{m.group(1)}://{m.group(2).rsplit('@', 1)[-1]}/…", text)
    for secret in secrets:
        text = text.replace(secret, "…")
    return text


def job_runs_of(warehouse: Warehouse, run_id: str) -> list[dict]:
    if warehouse.database not in (":memory:", "") and not Path(warehouse.database).exists():
        return []
    # Read-only, waiting for a load that is writing (bounded below the sensor's own timeout).
    with warehouse.read(wait_seconds=Settings.from_env().sensor_warehouse_wait_seconds) as con:
        if not ledger.has_table(con, "job_runs"):
            return []
        rows = ledger.job_runs_of(con, [run_id])
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in ((c, getattr(r, c)) for c in COLUMNS)}
            for r in rows]


def _selected(note: Notification, runs: list[dict], tags: dict) -> list[dict]:
    if not note.jobs:
        return runs
    if tags.get("gsdp/chain") in note.jobs:
        return runs
    return [r for r in runs if r["job"] in note.jobs]


def run_jobs(cfg: PlatformConfig, run) -> set[str]:
    """The gsdp jobs (and chain) a Dagster run belongs to, read from the run itself, for a run that
    ended before it logged a job run: its tags (`gsdp/job` from schedules and the Bulk API,
    `gsdp/chain`, `gsdp/source`: every job reading that source object), else its Dagster job name
    (`<job>_job`, `<chain>_chain_job`, `load_<connection>__<object>_job`), else its asset
    selection (a source object: the jobs reading it; only objects: the jobs loading them)."""
    tags = run.tags or {}
    names: set[str] = set()

    def chain(name: str) -> None:
        names.update([name, *cfg.chains[name].jobs])

    if tags.get("gsdp/job") in cfg.jobs:
        names.add(tags["gsdp/job"])
    if tags.get("gsdp/chain") in cfg.chains:
        chain(tags["gsdp/chain"])
    source = str(tags.get("gsdp/source", "")).split("/")
    if len(source) == 3 and source[0] == "source":
        names.update(j.name for j in jobs_reading(cfg, source[1], source[2]))
    if names:
        return names
    job_name = run.job_name or ""
    for job in cfg.jobs.values():
        if job_name in (job_asset_job_name(job.name), source_job_name(job.connection, job.source.object)):
            names.add(job.name)
    for name in cfg.chains:
        if job_name == chain_job_name(name):
            chain(name)
    if names:
        return names
    keys = [tuple(k.path) for k in (run.asset_selection or ())]
    sources = {k[1:] for k in keys if len(k) == 3 and k[0] == "source"}
    if sources:
        return {j.name for j in cfg.jobs.values() if (j.connection, j.source.object) in sources}
    objects = {k[1] for k in keys if len(k) == 2 and k[0] == "gs"}
    return {j.name for j in cfg.jobs.values() if j.destination in objects}


def compose(event: str, dagster_run_id: str, job_name: str, runs: list[dict], error: Optional[str]) -> tuple[str, str, dict]:
    """(subject, text body, JSON payload) for one run."""
    statuses = sorted({r["status"] for r in runs}) or (["Failed"] if event == "failure" else ["Success"])
    jobs = sorted({r["job"] for r in runs}) or [job_name]
    subject = f"[gsdp] {' / '.join(statuses)}: {', '.join(jobs)}"
    lines = [f"Dagster run {dagster_run_id} ({job_name}) {'failed' if event == 'failure' else 'succeeded'}.", ""]
    for r in runs:
        lines.append(f"{r['job']} <- {r['source_file']}: {r['status']}: read {r['rows_read']}, inserted {r['inserted']}, "
                     f"updated {r['updated']}, unchanged {r['unchanged']}, rejected {r['rejected']}, "
                     f"filtered {r['filtered']}, superseded {r['superseded']}, aggregated {r['aggregated']}"
                     + (f", deleted {r['deleted']}" if r.get("deleted") else ""))
        if r["error"]:
            lines.append(f"  error: {r['error']}")
        if r["rejected"]:
            lines.append(f"  rejects: gsdp rejects {r['job_run_id']}")
    if error and not any(r["error"] for r in runs):
        lines += ["", f"{'note' if event == 'success' else 'error'}: {error}"]
    payload = {"event": f"job_run.{event}", "dagster_run_id": dagster_run_id, "dagster_job": job_name,
               "job_runs": runs, "error": error}
    return subject, "\n".join(lines) + "\n", payload


def send_email(note: Notification, subject: str, body: str, smtp: SmtpResource) -> None:
    if not smtp.host:
        raise DeliveryError(f"notification {note.name!r}: GSDP_SMTP_HOST is not set; set it (and GSDP_SMTP_PORT) to send mail")
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, note.email.sender, ", ".join(note.email.to)
    msg.set_content(body)
    try:
        smtp.send(msg, timeout=10)
    except (OSError, smtplib.SMTPException) as e:
        raise DeliveryError(redact(f"notification {note.name!r}: mail to {', '.join(note.email.to)} failed: "
                                   f"{type(e).__name__}: {e}", _secrets(smtp=smtp))) from None


def post_webhook(note: Notification, payload: dict, attempts: int = 3) -> None:
    url = note.webhook.url or _env_url(note)
    where = "the configured URL" if note.webhook.url else f"the URL in {note.webhook.url_env}"
    if not url:
        raise DeliveryError(f"notification {note.name!r}: env var {note.webhook.url_env} (the webhook URL) is not set")
    problem = webhook_url_problem(url)
    if problem:
        raise DeliveryError(f"notification {note.name!r}: {where} is not a usable webhook URL: {problem}; "
                            f"give an http:// or https:// URL with a host and no spaces (nothing was sent)")
    data = json.dumps(payload, default=str).encode()
    last = ""
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "gsdp-notifications"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if 200 <= resp.status < 300:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
            if e.code != 429 and e.code < 500:
                break  # the receiver refused it; retrying will not help
            wait = e.headers.get("Retry-After") if e.headers else None
            if attempt < attempts:
                time.sleep(min(float(wait) if wait and wait.replace(".", "", 1).isdigit() else 0.5 * attempt, 5.0))
            continue
        except (urllib.error.URLError, OSError) as e:
            last = type(e).__name__
        if attempt < attempts:
            time.sleep(0.5 * attempt)
    raise DeliveryError(f"notification {note.name!r}: POST to {where} failed after {attempts} attempt(s): {last}")


def notify(cfg: PlatformConfig, warehouse: Warehouse, event: str, run, error: Optional[str], log,
           smtp: SmtpResource) -> int:
    """Deliver `event` ('success' or 'failure') for one Dagster run; returns deliveries made.

    Dagster does not evaluate a run status sensor again for a run once it failed, so when the
    warehouse stays busy the notice still goes out (to every notification for the event whose jobs,
    if it names any, the run belongs to: `run_jobs`), without the job-run counts and saying where to
    find them, rather than not at all."""
    try:
        runs = job_runs_of(warehouse, run.run_id)
    except WarehouseBusy as e:
        log.warning(f"notifications for run {run.run_id} go out without job-run counts: {e}")
        unknown = (f"job-run counts unavailable (the warehouse was busy with another load); "
                   f"see `gsdp activity` or the Dagster run {run.run_id}")
        belongs_to = run_jobs(cfg, run)
        return _deliver(cfg, smtp, event, run, f"{error}; {unknown}" if error else unknown, log,
                        lambda note: [] if not note.jobs or not belongs_to or belongs_to & set(note.jobs) else None)
    if event == "success":
        runs = [r for r in runs if r["status"] != "Failed"]
        if not runs:
            return 0  # nothing was applied (e.g. a file version already loaded): nothing to say

    belongs: Optional[set[str]] = None

    def select(note: Notification) -> Optional[list[dict]]:
        nonlocal belongs
        mine = _selected(note, runs, run.tags)
        if mine or (event == "failure" and not note.jobs):
            return mine
        if event == "failure":
            # None of its jobs logged a job run (the run failed before: file gone, warehouse busy,
            # out of memory, killed): it still hears of it if the run belongs to one of its jobs.
            belongs = run_jobs(cfg, run) if belongs is None else belongs
            if belongs & set(note.jobs):
                return mine
        return None

    return _deliver(cfg, smtp, event, run, error, log, select)


def _deliver(cfg: PlatformConfig, smtp: SmtpResource, event: str, run, error: Optional[str], log, select) -> int:
    """Mail / post to every notification for `event` whose `select(note)` gives job runs (not None)."""
    sent, errors = 0, []
    secrets = _secrets(cfg, smtp)
    for note in sorted(cfg.notifications.values(), key=lambda n: n.name):
        if event not in note.events:
            continue
        try:
            mine = select(note)
            if mine is None:
                continue
            subject, body, payload = compose(event, run.run_id, run.job_name, mine, error)
        except Exception as e:  # one notification's bug must not keep the others from theirs
            errors.append(redact(f"notification {note.name!r}: {type(e).__name__}: {e}", secrets))
            log.error(errors[-1])
            continue
        for what, deliver in ([("mail", lambda: send_email(note, subject, body, smtp))] if note.email else []) + \
                             ([("webhook", lambda: post_webhook(note, payload))] if note.webhook else []):
            try:
                deliver()
                sent += 1
            except DeliveryError as e:
                errors.append(redact(str(e), secrets))
                log.error(errors[-1])
            except Exception as e:  # anything else while building or sending: this recipient only
                errors.append(redact(f"notification {note.name!r}: {what} failed: {type(e).__name__}: {e}", secrets))
                log.error(errors[-1])
        log.info(redact(f"notification {note.name}: {subject}", secrets))
    if errors:
        raise DeliveryError("; ".join(errors))
    return sent


def build_notification_sensors(cfg: PlatformConfig) -> list[dg.SensorDefinition]:
    if not cfg.notifications:
        return []
    out = []
    if any("success" in n.events for n in cfg.notifications.values()):
        @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="notify_on_success_sensor",
                              default_status=dg.DefaultSensorStatus.RUNNING,
                              description="Mails / posts the job runs of each successful run to the notifications that ask for it")
        def _on_success(context: dg.RunStatusSensorContext, warehouse: Warehouse, smtp: SmtpResource):
            notify(cfg, warehouse, "success", context.dagster_run, None, context.log, smtp)

        out.append(_on_success)
    if any("failure" in n.events for n in cfg.notifications.values()):
        @dg.run_failure_sensor(name="notify_on_failure_sensor", default_status=dg.DefaultSensorStatus.RUNNING,
                               description="Mails / posts each failed run (its job runs and error) to the notifications")
        def _on_failure(context: dg.RunFailureSensorContext, warehouse: Warehouse, smtp: SmtpResource):
            error = context.failure_event.message if context.failure_event else None
            step_errors = [e.event_specific_data.error.message.strip() for e in context.get_step_failure_events()
                           if e.event_specific_data and e.event_specific_data.error]
            notify(cfg, warehouse, "failure", context.dagster_run, "; ".join(step_errors) or error, context.log, smtp)

        out.append(_on_failure)
    return out
