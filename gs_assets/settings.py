"""Every environment variable the platform reads, in one place (the reference for README's Environment).

`Settings.from_env()` reads them (from `os.environ`, or any mapping: tests pass a dict) into one
frozen object, checks every value and fails with one `SettingsError` naming each variable that is
wrong and what it may hold. No other module reads the environment (tests/gs_assets/test_settings.py
scans the source tree); the demo and benchmark launchers only set variables for the processes they
start. An empty variable counts as unset. Secrets (AWS keys, the SMTP password, webhook URLs named
by `url_env`) are kept as `SecretStr`: they never show in the settings' repr, str or errors.

This is the bottom layer: it imports nothing from the rest of gs_assets.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """Environment variables the platform cannot use; the message names each one and what it may hold."""


def _var(env: str, parse: Callable[[str], Any], *, show: bool = True) -> dict:
    """Field metadata: the variable's name, how its text becomes the value (raises ValueError with
    what is allowed), and whether a bad value may be quoted in the error (not for URLs or secrets)."""
    return {"env": env, "parse": parse, "show": show}


def _text(v: str) -> str:
    return v


def _path(v: str) -> Path:
    return Path(v)


def _seconds(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        x = float("nan")
    if not math.isfinite(x) or x < 0:
        raise ValueError("a number of seconds, 0 or more (e.g. 5 or 0.5)")
    return x


def _port(low: int) -> Callable[[str], int]:
    def parse(v: str) -> int:
        if not v.strip().isdigit() or not low <= int(v) <= 65535:
            raise ValueError(f"a TCP port number from {low} to 65535")
        return int(v)
    return parse


def _flag(v: str) -> bool:
    low = v.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("1 to switch it on, 0 (or unset) to leave it off")


def _url(v: str) -> str:
    try:
        u = urlsplit(v)
        ok = u.scheme in ("http", "https") and bool(u.hostname) and not any(c.isspace() for c in v)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("an http:// or https:// URL with a host and no spaces (e.g. http://127.0.0.1:9000)")
    return v


_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(b|bytes|kb|mb|gb|tb|kib|mib|gib|tib|%)\s*$", re.IGNORECASE)


def _memory(v: str) -> str:
    if not _MEMORY.match(v):
        raise ValueError("a DuckDB memory limit: a number and a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB) "
                         "or a percentage of the machine's memory (e.g. 600MB, 1GiB, 50%)")
    return v


def _secret(v: str) -> SecretStr:
    return SecretStr(v)


@dataclass(frozen=True)
class Settings:
    """The platform's settings; build with `Settings.from_env()` (defaults = every variable unset)."""

    config_dir: Path = field(default=ROOT / "config", metadata=_var("GSDP_CONFIG_DIR", _path))
    """GSDP_CONFIG_DIR: the config folder (objects.yaml, connections, jobs, chains, notifications); default config/."""
    warehouse: str = field(default=str(ROOT / "data" / "warehouse.duckdb"), metadata=_var("GSDP_WAREHOUSE", _text))
    """GSDP_WAREHOUSE: the DuckDB file loads write to; default data/warehouse.duckdb."""
    warehouse_memory_limit: str = field(default="600MB", metadata=_var("GSDP_WAREHOUSE_MEMORY_LIMIT", _memory))
    """GSDP_WAREHOUSE_MEMORY_LIMIT: DuckDB's memory_limit in a run (work beyond it spills to disk); default 600MB."""
    s3_endpoint_url: Optional[str] = field(default=None, metadata=_var("GSDP_S3_ENDPOINT_URL", _url, show=False))
    """GSDP_S3_ENDPOINT_URL: an S3-compatible server (the demo's moto); unset = AWS."""
    sqs_endpoint_url: Optional[str] = field(default=None, metadata=_var("GSDP_SQS_ENDPOINT_URL", _url, show=False))
    """GSDP_SQS_ENDPOINT_URL: the SQS server for `listing: sqs`; unset = the S3 endpoint (moto serves both), else AWS."""
    aws_default_region: str = field(default="us-east-1", metadata=_var("AWS_DEFAULT_REGION", _text))
    """AWS_DEFAULT_REGION: the region of the S3 and SQS clients; default us-east-1."""
    aws_access_key_id: Optional[SecretStr] = field(default=None, metadata=_var("AWS_ACCESS_KEY_ID", _secret, show=False))
    """AWS_ACCESS_KEY_ID: the S3/SQS access key (secret); unset = boto3's own chain (instance role, ~/.aws)."""
    aws_secret_access_key: Optional[SecretStr] = field(
        default=None, metadata=_var("AWS_SECRET_ACCESS_KEY", _secret, show=False))
    """AWS_SECRET_ACCESS_KEY: the secret of that key (secret)."""
    dagster_home: Optional[str] = field(default=None, metadata=_var("DAGSTER_HOME", _text))
    """DAGSTER_HOME: the Dagster instance folder (the demo uses .dagster_home/); unset = `gsdp` uses an ephemeral instance."""
    progress_seconds: float = field(default=5.0, metadata=_var("GSDP_PROGRESS_SECONDS", _seconds))
    """GSDP_PROGRESS_SECONDS: seconds between progress lines of a long load in the run log; default 5."""
    sensor_warehouse_wait_seconds: float = field(
        default=40.0, metadata=_var("GSDP_SENSOR_WAREHOUSE_WAIT_SECONDS", _seconds))
    """GSDP_SENSOR_WAREHOUSE_WAIT_SECONDS: how long a sensor waits for a load that holds the warehouse; default 40."""
    smtp_host: Optional[str] = field(default=None, metadata=_var("GSDP_SMTP_HOST", _text))
    """GSDP_SMTP_HOST: the SMTP server notifications mail through; unset = no mail (a notification with email fails)."""
    smtp_port: int = field(default=25, metadata=_var("GSDP_SMTP_PORT", _port(1)))
    """GSDP_SMTP_PORT: its port; default 25."""
    smtp_user: Optional[str] = field(default=None, metadata=_var("GSDP_SMTP_USER", _text))
    """GSDP_SMTP_USER: the SMTP login; unset = no login."""
    smtp_password: Optional[SecretStr] = field(default=None, metadata=_var("GSDP_SMTP_PASSWORD", _secret, show=False))
    """GSDP_SMTP_PASSWORD: the SMTP password (secret)."""
    smtp_starttls: bool = field(default=False, metadata=_var("GSDP_SMTP_STARTTLS", _flag))
    """GSDP_SMTP_STARTTLS: 1 = STARTTLS before the login; default off."""
    rest_host_map: Optional[str] = field(default=None, metadata=_var("GSDP_REST_HOST_MAP", _text, show=False))
    """GSDP_REST_HOST_MAP: vendor hosts sent elsewhere, `host=url,host=url` (the demo's and tests' local API fakes); unset = the real hosts."""
    rest_token_dir: Path = field(default=ROOT / "data" / "tokens", metadata=_var("GSDP_REST_TOKEN_DIR", _path))
    """GSDP_REST_TOKEN_DIR: where rotated OAuth refresh tokens are kept (one file per connection, owner-only); default data/tokens."""
    rest_max_retry_wait_seconds: Optional[float] = field(default=None, metadata=_var("GSDP_REST_MAX_RETRY_WAIT_SECONDS", _seconds))
    """GSDP_REST_MAX_RETRY_WAIT_SECONDS: the longest an API client really sleeps per retry (backoff or Retry-After); unset = as long as asked (tests set 0)."""
    bulk_db: Path = field(default=ROOT / "data" / "bulk_api.sqlite", metadata=_var("GSDP_BULK_DB", _path))
    """GSDP_BULK_DB: the Bulk API's SQLite file (access keys, upload requests); default data/bulk_api.sqlite."""
    bulk_host: str = field(default="127.0.0.1", metadata=_var("GSDP_BULK_HOST", _text))
    """GSDP_BULK_HOST: the address the Bulk API listens on; default 127.0.0.1."""
    bulk_port: int = field(default=8080, metadata=_var("GSDP_BULK_PORT", _port(1)))
    """GSDP_BULK_PORT: the Bulk API's port; default 8080."""
    bulk_status_grace_seconds: float = field(default=60.0, metadata=_var("GSDP_BULK_STATUS_GRACE_SECONDS", _seconds))
    """GSDP_BULK_STATUS_GRACE_SECONDS: how long after its run ended an upload still "running" is settled by the queue sensor; default 60."""
    ui_port: int = field(default=3000, metadata=_var("GSDP_UI_PORT", _port(1)))
    """GSDP_UI_PORT: the Dagster UI's port under ./dev ui; default 3000."""
    demo_s3_port: Optional[int] = field(default=None, metadata=_var("GSDP_DEMO_S3_PORT", _port(0)))
    """GSDP_DEMO_S3_PORT: the local S3 server's port (./dev ui: 9555 when unset; ./dev demo: a free port when unset or 0)."""

    _environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The environment read, for variables the config names (a webhook's url_env); never shown."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        """Settings from `environ`; a bad value raises one SettingsError naming every bad variable."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in cls.variables():
            raw = environ.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as e:
                shown = f"={raw!r}" if f.metadata["show"] else " (value not shown)"
                problems.append(f"{f.metadata['env']}{shown} is not usable: it must be {e}")
        if problems:
            raise SettingsError("; ".join(problems) + ". Fix or unset the variable(s) and start again "
                                "(gs_assets/settings.py lists every variable and its default).")
        return cls(**values, _environ=dict(environ))

    @classmethod
    def variables(cls) -> list:
        """The dataclass fields that are environment variables (in the order above)."""
        return [f for f in fields(cls) if "env" in f.metadata]

    def named_secret(self, var: str) -> Optional[SecretStr]:
        """The value of a variable the config names (a webhook's `url_env`), as a secret; None when unset."""
        raw = self._environ.get(var)
        return SecretStr(raw) if raw else None
