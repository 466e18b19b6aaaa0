"""pytest fixtures for real PostgreSQL and MariaDB servers on 127.0.0.1 (a plugin: tests/conftest.py
lists it in `pytest_plugins`).

- `postgres_server`, `mariadb_server` (session): a `LocalPostgres` / `LocalMariaDB` started once per
  pytest process (so once per xdist worker), each in its own root
  `<tempdir>/gsdp-sql-<pid>-<kind>-*` (under /tmp: the postgres and mysql users must reach it when
  the tests run as root), stopped and removed at the end of the session, failed tests or not. Roots
  left by a session that was killed are stopped and removed by the next one.
  Attributes: `.info` (the superuser's `Database` on the default database), `.port`, `.root`,
  `.create_database(name)`, `.create_role(name, password=None, database=..., read_only=True)`.
- `pg_database`, `mariadb_database` (per test): a fresh database with a unique name on that server,
  as a `Database`: `.host`, `.port`, `.user`, `.password`, `.database`, `.kind`, `.params()` (all
  but the password, as a connection's config holds them), `.url` (SQLAlchemy), `.connect()` (a new
  psycopg 3 / PyMySQL connection, autocommit) and `.read_only_role()` (a `Database` for a new login
  that may only SELECT there). Dropped after the test.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from gs_assets.demo.local_databases import Database, LocalMariaDB, LocalPostgres

_PREFIX = "gsdp-sql-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_roots(base: Path | None = None) -> None:
    """Stop the servers of roots whose pytest process is gone (killed sessions) and remove the roots."""
    base = Path(base or tempfile.gettempdir())
    for root in base.glob(_PREFIX + "*"):
        m = re.match(re.escape(_PREFIX) + r"(\d+)-", root.name)
        if not m or _pid_alive(int(m.group(1))) or not root.is_dir():
            continue
        for server_root in [root, *(d for d in root.iterdir() if d.is_dir())]:  # tests nest theirs one down
            cls = LocalPostgres if (server_root / "data" / "PG_VERSION").exists() else \
                LocalMariaDB if (server_root / "run").is_dir() else None
            try:
                if cls is not None:
                    cls(server_root).stop()
            except Exception as e:  # noqa: BLE001 - a broken leftover must not stop this session
                warnings.warn(f"could not stop the server of the stale root {server_root}: {e}")
        shutil.rmtree(root, ignore_errors=True)


def _server(cls, kind: str):
    reap_stale_roots()
    root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-{kind}-", dir=tempfile.gettempdir()))
    server = cls(root)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server (15 from Debian) on 127.0.0.1 for this pytest process."""
    yield from _server(LocalPostgres, "postgres")


# The MariaDB test server's OS clock zone is +05:30 (a POSIX TZ: no tz database needed) while its SQL
# time zone is UTC, as on a customer's server in a zone of its own: code that reads a time MariaDB shows
# in its OS zone (information_schema.innodb_trx) as if it were UTC fails in the tests.
MARIADB_OS_TIME_ZONE = "XST-5:30"


@pytest.fixture(scope="session")
def mariadb_server():
    """A MariaDB server (Debian's) on 127.0.0.1 for this pytest process (OS time zone +05:30, SQL time
    zone UTC)."""
    yield from _server(lambda root: LocalMariaDB(root, os_time_zone=MARIADB_OS_TIME_ZONE), "mariadb")


def _database_name(request) -> str:
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"t_{stem}_{secrets.token_hex(3)}"


def _database(server, request):
    name = _database_name(request)
    db: Database = server.create_database(name)
    yield db
    try:
        server.drop_database(name)
    except Exception as e:  # noqa: BLE001 - a database left behind goes with the session's server
        warnings.warn(f"could not drop the test database {name}: {e}")


@pytest.fixture
def pg_database(postgres_server, request):
    """A fresh PostgreSQL database for this test (superuser login): a `Database`."""
    yield from _database(postgres_server, request)


@pytest.fixture
def mariadb_database(mariadb_server, request):
    """A fresh MariaDB database for this test (superuser login): a `Database`."""
    yield from _database(mariadb_server, request)
