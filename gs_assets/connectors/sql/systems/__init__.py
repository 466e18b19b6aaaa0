"""The SQL systems, by the `system` of a connection. Imported lazily: a system's driver loads only
when a connection of it syncs (the Snowflake and BigQuery clients are heavy)."""

from __future__ import annotations

from importlib import import_module

SYSTEM_CLASSES = {
    "postgresql": "postgresql:PostgreSQL",
    "redshift": "redshift:Redshift",
    "mysql": "mysql:MySQL",
    "mariadb": "mysql:MariaDB",
    "snowflake": "snowflake:Snowflake",
    "bigquery": "bigquery:BigQuery",
}


def system_class(system: str):
    module, _, cls = SYSTEM_CLASSES[system].partition(":")
    return getattr(import_module(f"{__name__}.{module}"), cls)
