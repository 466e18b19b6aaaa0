"""`gsdp connections test NAME` for a SQL connection: log in, open the sync's read-only snapshot,
read the server's clock, and check every dataset the connection's jobs read (its columns exist and
their types fit the fields they fill) without reading a row. Also says whether the login could
write to a dataset's table: a read-only role is all the SQL kind needs."""

from __future__ import annotations

from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.kind import ConnectionCheck
from gs_assets.connectors.sql.reader import SyncFailed, check_columns, source_of
from gs_assets.connectors.sql.resource import ConnectionSetupError, open_system
from gs_assets.connectors.sql.statements import dataset_sql
from gs_assets.connectors.sql.systems.base import ConnectFailed


def connection_check(cfg: PlatformConfig, name: str) -> ConnectionCheck:
    conn = cfg.connections[name]
    summary = f"connection {name} ({conn.label}, auth method {conn.auth.method})"
    lines: list[tuple[str, str]] = [("system", conn.label), ("server", conn.host and f"{conn.host}:{conn.server_port}"
                                     or conn.account or conn.project or "-"),
                                    ("database", conn.database or "-"), ("login", conn.user or "(service account)"),
                                    ("tls", conn.tls.mode)]
    sources = sorted({j.source.object for j in cfg.jobs.values() if j.connection == name})
    try:
        system = open_system(name, conn)
        with system:
            system.begin_snapshot()
            now = system.server_now()
            lines.append(("server clock", now.isoformat(timespec="seconds")))
            lines.append(("snapshot", system.snapshot))
            for obj in sources:
                src = source_of(cfg, name, obj)
                try:
                    described = system.describe(dataset_sql(src.table, src.query))
                    found = check_columns(cfg, name, obj, described)
                    lines.append((f"dataset {obj}", f"{src.summary}: OK, reads {len(found)} of its "
                                  f"{len(described)} column(s)"))
                except SyncFailed as e:
                    return ConnectionCheck(summary, lines, error=str(e))
                except ConnectFailed:
                    raise
                except Exception as e:  # noqa: BLE001 - the driver's error for a missing table or a bad query
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    return ConnectionCheck(summary, lines, error=(
                        f"dataset {obj} ({src.summary}) cannot be read: {first}. Check that it exists and that "
                        f"login {conn.user or ''} may read it."))
                writable = system.can_write(src.table) if src.table else False
                if writable:
                    lines.append((f"  note", f"login {conn.user} may also write to {src.table}; a read-only role is "
                                  "enough (syncs run in a read-only transaction either way)"))
    except (ConnectFailed, ConnectionSetupError) as e:
        return ConnectionCheck(summary, lines, error=str(e))
    if not sources:
        lines.append(("datasets", "(no job reads this connection yet)"))
    return ConnectionCheck(summary, lines)
