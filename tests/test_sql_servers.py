"""The local database servers the SQL tests and the demo start themselves (gs_assets/demo/local_databases.py,
fixtures in tests/sql_servers.py): PostgreSQL 15 and MariaDB from Debian on 127.0.0.1, started as their
service users when we are root, reused when already running, stopped on request; a read-only role
reads and cannot write; `./dev setup-db` installs them."""

from __future__ import annotations

import os
import re
import socket
import tempfile
from pathlib import Path

import psycopg
import pymysql
import pytest

from gs_assets.demo import local_databases
from gs_assets.demo.local_databases import LocalDatabaseError, LocalMariaDB, LocalPostgres
from tests.sql_servers import reap_stale_roots

# Servers started, stopped and restarted on their own: the full suite (CI) runs these; every SQL test in
# the fast lane uses the servers anyway.
pytestmark = pytest.mark.slow


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def server_root():
    """A root straight under the system temp dir (the service users cannot reach pytest's tmp_path as root)."""
    import shutil
    root = Path(tempfile.mkdtemp(prefix=f"gsdp-sql-{os.getpid()}-test-"))
    root.chmod(0o755)  # mkdtemp makes it 0700
    yield root / "server"
    shutil.rmtree(root, ignore_errors=True)


def _service_user_of(pid: int) -> str:
    import pwd
    return pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name


def test_postgres_15_runs_on_loopback_as_its_service_user_and_a_read_only_role_cannot_write(pg_database, postgres_server):
    db = pg_database
    assert (db.kind, db.host, db.user) == ("postgresql", "127.0.0.1", "gsdp") and db.password
    assert db.params() == {"host": "127.0.0.1", "port": postgres_server.port, "user": "gsdp", "database": db.database}
    assert db.password not in repr(db)
    with db.connect() as con:
        assert con.execute("SHOW server_version_num").fetchone()[0].startswith("15")
        assert con.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert con.execute("SHOW unix_socket_directories").fetchone()[0] == str(postgres_server.root / "run")
        con.execute("CREATE TABLE accounts (id int PRIMARY KEY, name text)")
        con.execute("INSERT INTO accounts VALUES (1, 'Acme')")
    pid = int((postgres_server.root / "data" / "postmaster.pid").read_text().split()[0])
    assert _service_user_of(pid) == ("postgres" if os.geteuid() == 0 else _service_user_of(os.getpid()))

    ro = db.read_only_role()
    assert (ro.database, ro.port) == (db.database, db.port) and ro.user != db.user
    with db.connect() as con:  # a schema, a table and a view made after the role: readable too
        con.execute("CREATE SCHEMA billing")
        con.execute("CREATE TABLE billing.invoices (id int)")
        con.execute("INSERT INTO billing.invoices VALUES (7)")
        con.execute("CREATE VIEW billing.big AS SELECT id FROM billing.invoices WHERE id > 5")
    with ro.connect() as con:
        assert con.execute("SELECT id, name FROM accounts").fetchall() == [(1, "Acme")]
        assert con.execute("SELECT id FROM billing.invoices").fetchall() == [(7,)]
        assert con.execute("SELECT id FROM billing.big").fetchall() == [(7,)]
        for stmt in ("INSERT INTO accounts VALUES (2, 'x')", "UPDATE accounts SET name = 'x'", "DELETE FROM accounts",
                     "CREATE TABLE mine (a int)", "CREATE TABLE billing.mine (a int)", "TRUNCATE billing.invoices",
                     "CREATE SCHEMA mine", "CREATE TEMPORARY TABLE mine (a int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(stmt)
    with db.connect() as con:
        assert con.execute("SELECT count(*) FROM accounts").fetchone()[0] == 1


def test_postgres_asks_for_the_password_over_tcp(pg_database):
    for user, password in ((pg_database.user, "wrong"), ("postgres", "")):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed|no password supplied"):
            psycopg.connect(host="127.0.0.1", port=pg_database.port, user=user, password=password,
                            dbname=pg_database.database, connect_timeout=10)


def test_mariadb_runs_on_loopback_and_a_read_only_role_cannot_write(mariadb_database, mariadb_server):
    db = mariadb_database
    assert (db.kind, db.host, db.user) == ("mariadb", "127.0.0.1", "gsdp") and db.password
    with db.connect() as con:
        cur = con.cursor()
        cur.execute("SELECT VERSION(), @@bind_address, @@socket")
        version, bind, sock = cur.fetchone()
        assert "MariaDB" in version and bind == "127.0.0.1" and sock == str(mariadb_server.root / "run" / "mysqld.sock")
        cur.execute("CREATE TABLE accounts (id int PRIMARY KEY, name text)")
        cur.execute("INSERT INTO accounts VALUES (1, 'Acme')")
    pid = int((mariadb_server.root / "run" / "mariadbd.pid").read_text().split()[0])
    assert _service_user_of(pid) == ("mysql" if os.geteuid() == 0 else _service_user_of(os.getpid()))

    ro = db.read_only_role()
    with db.connect() as con:
        con.cursor().execute("CREATE TABLE invoices (id int)")
        con.cursor().execute("INSERT INTO invoices VALUES (7)")
    with ro.connect() as con:
        cur = con.cursor()
        cur.execute("SELECT id, name FROM accounts")
        assert cur.fetchall() == ((1, "Acme"),)
        cur.execute("SELECT id FROM invoices")
        assert cur.fetchall() == ((7,),)
        for stmt in ("INSERT INTO accounts VALUES (2, 'x')", "UPDATE accounts SET name = 'x'", "DELETE FROM accounts",
                     "CREATE TABLE mine (a int)", "TRUNCATE invoices", "CREATE TEMPORARY TABLE mine (a int)",
                     "CREATE DATABASE mine"):
            with pytest.raises(pymysql.err.OperationalError, match="denied"):
                cur.execute(stmt)
    with db.connect() as con:
        cur = con.cursor()
        cur.execute("SELECT count(*) FROM accounts")
        assert cur.fetchone() == (1,)


def test_mariadb_asks_for_the_password_over_tcp(mariadb_database):
    for user, password in ((mariadb_database.user, "wrong"), ("root", ""), ("", "")):
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            pymysql.connect(host="127.0.0.1", port=mariadb_database.port, user=user, password=password,
                            connect_timeout=10)


@pytest.mark.parametrize("cls", [LocalPostgres, LocalMariaDB], ids=["postgres", "mariadb"])
def test_a_second_start_reuses_the_running_server(cls, request):
    server = request.getfixturevalue("postgres_server" if cls is LocalPostgres else "mariadb_server")
    pid_file = server.root / "run" / "mariadbd.pid" if cls is LocalMariaDB else server.root / "data" / "postmaster.pid"
    pid = pid_file.read_text().split()[0]
    again = cls(server.root)
    info = again.start()
    assert (info.port, info.user, info.password) == (server.port, server.info.user, server.info.password)
    assert pid_file.read_text().split()[0] == pid  # no second server
    assert again.start().port == server.port  # and again
    info.connect().close()


@pytest.mark.parametrize("cls", [LocalPostgres, LocalMariaDB], ids=["postgres", "mariadb"])
def test_stop_stops_and_a_restart_keeps_the_data(cls, server_root):
    with cls(server_root) as server:
        first = server.info
        server.create_database("kept")
        with server.create_role("writer", "pw-writer", database="kept", read_only=False).connect() as con:
            con.cursor().execute("CREATE TABLE t (a int)")
            con.cursor().execute("INSERT INTO t VALUES (1)")
        assert server.running() and _answers(first.port)
        server.stop()
        assert not server.running() and not _answers(first.port)
        server.stop()  # stopping a stopped server is a no-op

        second = server.start()  # the same data dir and password, a new free port
        assert second.password == first.password
        with server.create_role("reader", database="kept").connect() as con:
            cur = con.cursor()
            cur.execute("SELECT a FROM t")
            assert [tuple(r) for r in cur.fetchall()] == [(1,)]
    assert not server.running() and not _answers(second.port)


@pytest.mark.parametrize("cls", [LocalPostgres, LocalMariaDB], ids=["postgres", "mariadb"])
def test_a_port_that_is_taken_is_named(cls, server_root):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalDatabaseError, match=f"cannot listen on 127.0.0.1:{port}: the port is taken"):
            cls(server_root, port=port).start()
    assert not cls(server_root).running()


def test_missing_binaries_say_how_to_install_them(server_root, monkeypatch):
    monkeypatch.setattr(local_databases, "postgres_bindir", lambda: None)
    with pytest.raises(LocalDatabaseError, match=r"\./dev setup-db.*apt-get install postgresql mariadb-server"):
        LocalPostgres(server_root).start()
    monkeypatch.setattr(local_databases, "_which", lambda *a: None)
    with pytest.raises(LocalDatabaseError, match=r"MariaDB.*\./dev setup-db"):
        LocalMariaDB(server_root).start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the root to a service user")
def test_a_root_the_service_user_cannot_reach_is_refused(tmp_path):
    # pytest's tmp_path is under /tmp/pytest-of-root (0700): postgres cannot get there
    with pytest.raises(LocalDatabaseError, match="not reachable by the 'postgres' user"):
        LocalPostgres(tmp_path / "pg").start()


def test_the_roots_of_a_killed_session_are_stopped_and_removed(server_root):
    dead = os.getpid()
    while True:  # a pid no process has
        dead += 7919
        try:
            os.kill(dead, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            pass
    base = server_root.parent
    pg_root, my_root = base / f"gsdp-sql-{dead}-postgres-x", base / f"gsdp-sql-{dead}-test-y" / "server"
    ports = [LocalPostgres(pg_root).start().port, LocalMariaDB(my_root).start().port]
    mine = base / f"gsdp-sql-{os.getpid()}-postgres-z"
    mine.mkdir()
    reap_stale_roots(base)
    assert not pg_root.exists() and not my_root.parent.exists() and mine.exists()
    assert not any(_answers(port) for port in ports)


def test_dev_setup_db_is_a_command(tmp_path):
    from tests.test_lanes import _dev
    if local_databases.postgres_bindir() is None or local_databases._which("mariadbd", "/usr/sbin") is None:
        pytest.skip("./dev setup-db would install the servers")
    assert _dev(tmp_path, "setup-db") == []  # installed already: nothing to do, nothing else run
    out = _dev(tmp_path, "test", "--fast", "-q")
    assert out[out.index("python"):][:3] == ["python", "-m", "pytest"]
    head = (Path(__file__).resolve().parents[1] / "dev").read_text().splitlines()[1:12]
    assert any(re.match(r"#\s+\./dev setup-db", line) for line in head)


def test_a_client_that_gives_up_mid_login_does_not_hold_the_database(pg_database, postgres_server):
    """A driver that fails its side of the SCRAM exchange and keeps the socket open (redshift-connector
    2.2.0 did) leaves a backend waiting for the rest of the login; PostgreSQL's default
    authentication_timeout (60 s) made dropping the test database wait that long."""
    with pg_database.connect() as con:
        assert con.execute("SHOW authentication_timeout").fetchone()[0] == "10s"
