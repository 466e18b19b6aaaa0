"""The SQL kind's resource: opens a system's session for one sync with the connection's secrets,
read from the env vars its config names when the sync starts (never stored, never shown)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import dagster as dg

from gs_assets.connectors.secrets import Secret
from gs_assets.connectors.sql.config import OPTIONAL_SECRETS, SqlConnection
from gs_assets.connectors.sql.systems import system_class
from gs_assets.connectors.sql.systems.base import SqlSystem
from gs_assets.settings import Settings


class ConnectionSetupError(Exception):
    """A connection that cannot be used as configured (a secret's env var unset): one paragraph."""


def connection_secrets(name: str, conn: SqlConnection, settings: Optional[Settings] = None) -> dict[str, Secret]:
    """The connection's secrets from the env vars its config names; every unset one in one paragraph."""
    settings = settings or Settings.from_env()
    values, missing = {}, []
    for secret, var in conn.secret_env(name).items():
        v = settings.named_secret(var)
        if v is None:
            if secret not in OPTIONAL_SECRETS:
                missing.append(f"{var} (its {secret})")
        else:
            values[secret] = Secret(v.get_secret_value())
    if missing:
        raise ConnectionSetupError(
            f"connection {name} ({conn.label}, auth method {conn.auth.method}) cannot log in: env var(s) "
            f"{', '.join(missing)} not set. Set them in the environment of the Dagster process (or `gsdp`), or "
            f"name other variables under connections.{name}.auth.env.")
    return values


def open_system(name: str, conn: SqlConnection, *, settings: Optional[Settings] = None,
                options: Optional[Mapping[str, Any]] = None) -> SqlSystem:
    """The session object of a configured connection (not yet connected: use it as a context manager)."""
    return system_class(conn.system)(name, conn, connection_secrets(name, conn, settings), options=options)


class SqlResource(dg.ConfigurableResource):
    """Opens SQL sessions for syncs (no secret in here: each connection's secrets come from its env
    vars when a sync starts)."""

    def system(self, name: str, conn: SqlConnection) -> SqlSystem:
        return open_system(name, conn)
