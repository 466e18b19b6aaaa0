"""The REST API kind's resource and the clients it builds: which hosts the vendor's names go to
(real hosts unless GSDP_REST_HOST_MAP sends them to local fakes), where rotated refresh tokens
are kept, and the secrets of a connection, read from the env vars its config names.

A secret's value never reaches a message: a missing one is named by its env var.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping, Optional

import dagster as dg

from gs_assets.connectors.rest_api.auth import Secret
from gs_assets.connectors.rest_api.client import RestClient
from gs_assets.connectors.rest_api.config import RestApiConnection
from gs_assets.settings import Settings


class ConnectionSetupError(Exception):
    """A connection that cannot be used as configured (a secret's env var unset): one paragraph."""


def parse_host_map(text: Optional[str]) -> dict[str, str]:
    """`host=url,host=url` -> {host: url}; a malformed entry is a clear error."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        host, sep, url = part.partition("=")
        if not sep or not host.strip() or not url.strip().startswith(("http://", "https://")):
            raise ConnectionSetupError(f"GSDP_REST_HOST_MAP entry {part!r} is not host=http(s)://address:port; "
                                       f"e.g. login.salesforce.com=http://127.0.0.1:8700")
        out[host.strip().lower()] = url.strip().rstrip("/")
    return out


class FileTokenStore:
    """Rotated refresh tokens, one owner-only file per connection, where the next run finds them
    (a token a vendor rotates on refresh replaces the env var's from then on)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _path(self, connection: str) -> Path:
        return self.directory / f"{connection}.refresh_token"

    def get(self, connection: str) -> Optional[str]:
        p = self._path(connection)
        return p.read_text(encoding="utf-8").strip() or None if p.is_file() else None

    def put(self, connection: str, refresh_token: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        p = self._path(connection)
        tmp = p.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(refresh_token)
        os.replace(tmp, p)

    def forget(self, connection: str) -> None:
        self._path(connection).unlink(missing_ok=True)


class RestApiResource(dg.ConfigurableResource):
    """Where REST API clients send their requests and keep rotated tokens (no secret in here:
    each connection's secrets come from its env vars when a sync starts)."""

    host_map: Optional[str] = None
    token_dir: str = ""
    max_retry_wait_seconds: Optional[float] = None  # cap on each real sleep between retries (tests: 0)

    def token_store(self) -> FileTokenStore:
        return FileTokenStore(Path(self.token_dir or Settings.from_env().rest_token_dir))

    def client(self, name: str, conn: RestApiConnection, **kwargs) -> RestClient:
        if self.max_retry_wait_seconds is not None:
            kwargs.setdefault("sleep", capped_sleep(self.max_retry_wait_seconds))
        return rest_client(name, conn, host_map=parse_host_map(self.host_map), token_store=self.token_store(),
                           **kwargs)


def capped_sleep(cap: float):
    """A sleep that waits at most `cap` seconds (the client still counts the wait it was asked
    for, so its retry budget and Retry-After rules behave as without the cap)."""
    def sleep(seconds: float) -> None:
        if min(seconds, cap) > 0:
            time.sleep(min(seconds, cap))
    return sleep


def rest_resource_from_env() -> RestApiResource:
    s = Settings.from_env()
    return RestApiResource(host_map=s.rest_host_map, token_dir=str(s.rest_token_dir),
                           max_retry_wait_seconds=s.rest_max_retry_wait_seconds)


def connection_secrets(name: str, conn: RestApiConnection, settings: Optional[Settings] = None) -> dict[str, Secret]:
    """The connection's secrets from the env vars its config names; every unset one in one paragraph."""
    settings = settings or Settings.from_env()
    env = conn.secret_env(name)
    values, missing = {}, []
    for secret, var in env.items():
        v = settings.named_secret(var)
        if v is None:
            missing.append(f"{var} (its {secret})")
        else:
            values[secret] = Secret(v.get_secret_value())
    if missing:
        raise ConnectionSetupError(
            f"connection {name} ({conn.system}, auth method {conn.auth.method}) cannot authorize: env var(s) "
            f"{', '.join(missing)} not set. Set them in the environment of the Dagster process (or `gsdp`), or "
            f"name other variables under connections.{name}.auth.env.")
    return values


def rest_client(name: str, conn: RestApiConnection, *, host_map: Optional[Mapping[str, str]] = None,
                token_store=None, settings: Optional[Settings] = None, **kwargs) -> RestClient:
    """A client for one sync of a configured connection."""
    settings = settings or Settings.from_env()
    if host_map is None:
        host_map = parse_host_map(settings.rest_host_map)
    if token_store is None:
        token_store = FileTokenStore(settings.rest_token_dir)
    return RestClient(conn.spec, connection=name, auth_method=conn.auth.method,
                      secrets=connection_secrets(name, conn, settings), environment=conn.environment_name,
                      domain=conn.domain, token_store=token_store, host_map=host_map or None,
                      daily_budget_reserve=conn.daily_budget_reserve, **kwargs)
