"""Local PostgreSQL and MariaDB servers on 127.0.0.1 for the demo and the tests (Debian's packages).

`LocalPostgres(root)` and `LocalMariaDB(root)` share one interface: `start()` initialises a data
directory under `root` when it has none (PostgreSQL: `initdb`, password login over TCP with
scram-sha-256, trust only on the unix socket; MariaDB: `mariadb-install-db`), starts the server on
127.0.0.1 on a free port with its unix socket inside `root` (never in a shared place), waits until it
accepts connections and returns the superuser's `Database` (host, port, user, password, database).
A server already running from the same root (pid file alive, port answering) is reused, so `start()`
is idempotent. `stop()` shuts it down fast; both work as context managers. `create_database(name)`
and `create_role(name, database=..., read_only=True)` give a `Database` for a fresh database and for
a login role that may only SELECT in it.

Layout of a root: `data/` (the data directory), `run/` (socket and pid file), `server.log`, `port`,
`start.lock` and `superuser.password` (0600; random, made at initialisation). The port is a free one
chosen at each start unless `port=` names one. Both servers run in UTC.

As root (CI runs as root) the servers refuse to run as root: `root` is owned by the service user
(postgres / mysql) and the server runs as it (`runuser -u postgres -- initdb/pg_ctl`, `mariadbd
--user=mysql`). Every parent of `root` must then be traversable by that user: root's own temporary
directories (e.g. pytest's, /tmp/pytest-of-root, 0700) are not, so the tests put their roots straight
under the system temp dir (/tmp, 1777). A root the service user cannot reach fails with a message
saying so. Not as root, everything runs as the current user.

The servers are for local use only: durability is traded for speed (PostgreSQL `fsync=off`,
MariaDB `innodb_flush_log_at_trx_commit=0`); a server process that is killed loses nothing that
committed before, only an operating-system crash could.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import quote

HOST = "127.0.0.1"
SUPERUSER = "gsdp"
DEFAULT_DATABASE = "gsdp"
START_TIMEOUT = 120.0  # seconds; generous: a cold start takes a few seconds, a loaded CI machine more
STOP_TIMEOUT = 60.0

MISSING_BINARIES = (
    "{what} is not installed: the SQL tests and the demo start Debian's PostgreSQL 15 and MariaDB "
    "themselves. Run `./dev setup-db` (it installs them with apt-get, through sudo when not root), "
    "or install the Debian packages yourself: `apt-get install postgresql mariadb-server` "
    "(PostgreSQL binaries are looked for in /usr/lib/postgresql/<version>/bin, 15 preferred; "
    "mariadbd and mariadb-install-db on PATH or in /usr/sbin and /usr/bin)."
)

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class LocalDatabaseError(RuntimeError):
    """A local database server could not be set up, started or stopped; the message says why and
    carries the tail of the server's log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not count: it has exited and waits to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:]) or f"({path} is empty)"


def _check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} {name!r}: use lower-case letters, digits and _ (up to 63, not starting with a digit)")
    return name


@dataclass(frozen=True)
class Database:
    """How to reach one database on a local server as one login. `password` is the secret (it never
    shows in the repr); tests hand it to the code under test through an env var
    (`monkeypatch.setenv("GSDP_<CONNECTION>_PASSWORD", db.password)`)."""

    kind: str  # "postgresql" or "mariadb"
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    server: Any = field(default=None, repr=False, compare=False)

    def params(self) -> dict:
        """host, port, user, database as a connection's config would hold them (no password)."""
        return {"host": self.host, "port": self.port, "user": self.user, "database": self.database}

    def _url(self, scheme: str) -> str:
        return (f"{scheme}://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/"
                f"{self.database}")

    @property
    def uri(self) -> str:
        """postgresql://… or mysql://… (libpq, ADBC); it holds the password: never log it."""
        return self._url("postgresql" if self.kind == "postgresql" else "mysql")

    @property
    def url(self) -> str:
        """A SQLAlchemy URL (postgresql+psycopg://…, mysql+pymysql://…); it holds the password: never log it."""
        return self._url("postgresql+psycopg" if self.kind == "postgresql" else "mysql+pymysql")

    def connect(self, **kwargs):
        """A new driver connection (psycopg 3 or PyMySQL), autocommit unless told otherwise."""
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        if self.kind == "postgresql":
            import psycopg
            return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                   dbname=self.database, **kwargs)
        import pymysql
        return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               database=self.database, **kwargs)

    def read_only_role(self, name: Optional[str] = None, password: Optional[str] = None) -> "Database":
        """A new login role that may only read (SELECT) this database: every schema and table, those the
        superuser makes later included."""
        name = name or f"ro_{secrets.token_hex(4)}"
        return self.server.create_role(name, password, database=self.database, read_only=True)


class _LocalServer:
    kind = ""
    service_user = ""
    label = ""

    def __init__(self, root: Path | str, port: Optional[int] = None):
        """`port`: listen on this port (an error if it is taken); default: a free port at each start."""
        self.root = Path(root).absolute()
        self.fixed_port = port
        self.data = self.root / "data"
        self.run_dir = self.root / "run"
        self.log = self.root / "server.log"
        self.info: Optional[Database] = None

    # -- who runs the server -------------------------------------------------------------------
    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def _owner(self) -> tuple[int, int]:
        if not self.as_root:
            return os.getuid(), os.getgid()
        try:
            pw = pwd.getpwnam(self.service_user)
        except KeyError:
            raise LocalDatabaseError(
                f"{self.label} must not run as root and there is no {self.service_user!r} user to run it as. "
                + MISSING_BINARIES.format(what=f"The {self.label} server package")) from None
        return pw.pw_uid, pw.pw_gid

    def _as_service(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.service_user, "--", *argv] if self.as_root else argv

    def _prepare_root(self) -> None:
        uid, gid = self._owner()
        for d in (self.root, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, uid, gid)
            d.chmod(0o700)
        if self.as_root:
            probe = subprocess.run(self._as_service(["test", "-w", str(self.root)]), capture_output=True)
            if probe.returncode != 0:
                raise LocalDatabaseError(
                    f"The {self.label} root {self.root} is not reachable by the {self.service_user!r} user the "
                    f"server runs as (root's own temporary directories are 0700): put the root under a "
                    f"directory every user can traverse (e.g. /tmp), or make its parents traversable (chmod o+x).")

    def _write_private(self, path: Path, text: str) -> None:
        path.write_text(text)
        path.chmod(0o600)
        uid, gid = self._owner()
        os.chown(path, uid, gid)

    def _password(self) -> str:
        path = self.root / "superuser.password"
        if not path.exists():
            self._write_private(path, secrets.token_urlsafe(18))
        return path.read_text().strip()

    def _running_port(self) -> Optional[int]:
        """The port of a server from this root that is running and answers, else None."""
        pid, port = self._pid_and_port()
        if pid and port and _pid_alive(pid) and _port_answers(port):
            return port
        return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One start or stop per root at a time (two processes starting the same root get one server)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "start.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    # -- public interface ------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> Database:
        """Initialise (if needed), start (unless already running) and return the superuser's Database."""
        self._binaries()
        with self._locked():
            self._prepare_root()
            password = self._password()
            if not self._initialised():
                self._initialise(password)
            port = self._running_port()
            if port is None:
                port = self._start_on_a_port(timeout)
                (self.root / "port").write_text(str(port))
            self.info = Database(self.kind, HOST, port, SUPERUSER, password, DEFAULT_DATABASE, server=self)
            self._ready(timeout)
        return self.info

    def _start_on_a_port(self, timeout: float) -> int:
        if self.fixed_port:
            if self._start(self.fixed_port, timeout):
                return self.fixed_port
            raise LocalDatabaseError(f"{self.label} cannot listen on {HOST}:{self.fixed_port}: the port is taken. "
                                     f"Stop what uses it or leave the port out (a free one is chosen).")
        for _ in range(3):  # a free port can be taken between choosing it and binding it
            port = free_port()
            if self._start(port, timeout):
                return port
        raise LocalDatabaseError(f"{self.label} could not bind a free port on {HOST} (3 tries); "
                                 f"its log {self.log} ends:\n{_tail(self.log)}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Fast shutdown (sessions are ended, what committed stays); nothing to do if it is not running."""
        if not self.root.is_dir():
            return
        with self._locked():
            pid, _ = self._pid_and_port()
            if pid is not None and _pid_alive(pid):
                self._stop(pid, timeout)

    @property
    def port(self) -> int:
        return self._require().port

    def running(self) -> bool:
        return self._running_port() is not None

    def _require(self) -> Database:
        if self.info is None:
            raise LocalDatabaseError(f"{self.label} at {self.root} is not started: call start() first")
        return self.info

    def _wait_connect(self, info: Database, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                info.connect().close()
                return
            except Exception as e:  # noqa: BLE001 - not accepting connections yet
                last = e
                time.sleep(0.2)
        raise LocalDatabaseError(f"{self.label} on {HOST}:{info.port} did not accept a connection within "
                                 f"{timeout:.0f} s ({type(last).__name__}); its log {self.log} ends:\n{_tail(self.log)}")

    def create_database(self, name: str) -> Database:
        """A new, empty database `name` (owned by the superuser)."""
        info = self._require()
        _check_name(name, "database name")
        with info.connect() as con:
            con.cursor().execute(self._create_database_sql(name))
        return replace(info, database=name)

    def drop_database(self, name: str) -> None:
        info = self._require()
        _check_name(name, "database name")
        with info.connect() as con:
            con.cursor().execute(self._drop_database_sql(name))

    def create_role(self, name: str, password: Optional[str] = None, *, database: str,
                    read_only: bool = True) -> Database:
        """A login role `name` with `password` (random if None) that may read `database` (SELECT only,
        tables made later included) or, with read_only=False, do anything in it."""
        info = self._require()
        _check_name(name, "role name")
        _check_name(database, "database name")
        password = password or secrets.token_urlsafe(12)
        with replace(info, database=database).connect() as con:
            cur = self._client_cursor(con)
            for stmt in self._role_sql(name, database, read_only):
                cur.execute(stmt, {"pw": password} if "%(pw)s" in stmt else None)
        return replace(info, user=name, password=password, database=database)

    def __enter__(self) -> "_LocalServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- per server ------------------------------------------------------------------------------
    def _binaries(self) -> None: ...
    def _initialised(self) -> bool: ...
    def _initialise(self, password: str) -> None: ...
    def _pid_and_port(self) -> tuple[Optional[int], Optional[int]]: ...
    def _start(self, port: int, timeout: float) -> bool: ...
    def _ready(self, timeout: float) -> None: ...
    def _stop(self, pid: int, timeout: float) -> None: ...
    def _client_cursor(self, con): ...
    def _create_database_sql(self, name: str) -> str: ...
    def _drop_database_sql(self, name: str) -> str: ...
    def _role_sql(self, name: str, database: str, read_only: bool) -> list[str]: ...


def _run(argv: list[str], what: str, log: Path, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise LocalDatabaseError(f"{what} failed (exit {p.returncode}):\n{(p.stdout + p.stderr).strip()[-3000:]}"
                                 f"\nlog {log} ends:\n{_tail(log)}")
    return p


def postgres_bindir() -> Optional[Path]:
    """/usr/lib/postgresql/<version>/bin with initdb, 15 preferred, else the newest."""
    base = Path("/usr/lib/postgresql")
    found = sorted((d for d in base.glob("*/bin") if (d / "initdb").is_file() and d.parent.name.isdigit()),
                   key=lambda d: int(d.parent.name))
    preferred = [d for d in found if d.parent.name == "15"]
    return (preferred or found[-1:] or [None])[0]


class LocalPostgres(_LocalServer):
    kind = "postgresql"
    service_user = "postgres"
    label = "PostgreSQL"

    def _binaries(self) -> None:
        self.bindir = postgres_bindir()
        if self.bindir is None:
            raise LocalDatabaseError(MISSING_BINARIES.format(what="PostgreSQL (initdb, pg_ctl)"))

    def _initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def _initialise(self, password: str) -> None:
        if self.data.exists():  # a half-made data dir from an interrupted initdb
            shutil.rmtree(self.data)
        pwfile = self.root / "superuser.password"
        _run(self._as_service([str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                               f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                               "-E", "UTF8", "--no-locale", "--no-sync"]), "initdb", self.log)
        with open(self.data / "postgresql.conf", "a") as conf:
            sockets = str(self.run_dir).replace("'", "''")
            conf.write("\n# gs-data-platform local server (gs_assets/demo/local_databases.py)\n"
                       f"listen_addresses = '{HOST}'\nunix_socket_directories = '{sockets}'\n"
                       "timezone = 'UTC'\nlog_timezone = 'UTC'\n"
                       # a client that gives up mid-login must not hold a backend (and so DROP DATABASE) for 60 s
                       "authentication_timeout = '10s'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")

    def _pid_and_port(self) -> tuple[Optional[int], Optional[int]]:
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None, None

    def _pg_ctl(self, *args: str) -> list[str]:
        return self._as_service([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args])

    def _start(self, port: int, timeout: float) -> bool:
        if self.as_root and self.log.exists():
            os.chown(self.log, *self._owner())
        log_start = self.log.stat().st_size if self.log.exists() else 0
        p = subprocess.run(self._pg_ctl("-l", str(self.log), "-o", f"-p {port}", "-w", "-t", str(int(timeout)),
                                        "start"), capture_output=True, text=True)
        if p.returncode == 0:
            return True
        new = self.log.read_bytes()[log_start:].decode(errors="replace") if self.log.exists() else ""
        if "could not bind" in new or "Address already in use" in new:
            return False
        raise LocalDatabaseError(f"PostgreSQL did not start on {HOST}:{port} (pg_ctl exit {p.returncode}: "
                                 f"{(p.stdout + p.stderr).strip()[-1000:]}); its log {self.log} ends:\n{_tail(self.log)}")

    def _ready(self, timeout: float) -> None:
        # the default database is made after the first start: wait on "postgres"
        postgres = replace(self._require(), database="postgres")
        self._wait_connect(postgres, timeout)
        with postgres.connect() as con:
            cur = con.cursor()
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEFAULT_DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DEFAULT_DATABASE}"')

    def _client_cursor(self, con):
        import psycopg
        return psycopg.ClientCursor(con)  # CREATE ROLE ... PASSWORD takes no server-side parameter

    def _stop(self, pid: int, timeout: float) -> None:
        self._binaries()
        _run(self._pg_ctl("-m", "fast", "-w", "-t", str(int(timeout)), "stop"), "pg_ctl stop", self.log)

    def _create_database_sql(self, name: str) -> str:
        return f'CREATE DATABASE "{name}"'

    def _drop_database_sql(self, name: str) -> str:
        return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'

    def _role_sql(self, name: str, database: str, read_only: bool) -> list[str]:
        # every schema of the database, and (default privileges) the schemas and tables the superuser makes later
        on_db, on_schemas, on_tables = ("CONNECT", "USAGE", "SELECT") if read_only else ("ALL", "ALL", "ALL")
        each_schema = (f"DO $$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname "
                       f"NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP "
                       f"EXECUTE format('GRANT {on_schemas} ON SCHEMA %I TO \"{name}\"', s); "
                       f"EXECUTE format('GRANT {on_tables} ON ALL TABLES IN SCHEMA %I TO \"{name}\"', s); END LOOP; END $$")
        return [f'CREATE ROLE "{name}" LOGIN PASSWORD %(pw)s',
                # everyone may make temporary tables by default: not in a database with a read-only role
                *([f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC'] if read_only else []),
                f'GRANT {on_db} ON DATABASE "{database}" TO "{name}"',
                each_schema,
                f'ALTER DEFAULT PRIVILEGES FOR ROLE "{SUPERUSER}" GRANT {on_schemas} ON SCHEMAS TO "{name}"',
                f'ALTER DEFAULT PRIVILEGES FOR ROLE "{SUPERUSER}" GRANT {on_tables} ON TABLES TO "{name}"']


def _which(name: str, *dirs: str) -> Optional[str]:
    found = shutil.which(name)
    if found:
        return found
    for d in dirs:
        if (Path(d) / name).is_file():
            return str(Path(d) / name)
    return None


class LocalMariaDB(_LocalServer):
    kind = "mariadb"
    service_user = "mysql"
    label = "MariaDB"

    def __init__(self, root: Path | str, port: Optional[int] = None, *, os_time_zone: Optional[str] = None):
        """`os_time_zone`: the TZ the server process runs in (its @@system_time_zone, which some
        information_schema tables show times in); its SQL time zone stays UTC either way."""
        super().__init__(root, port)
        self.os_time_zone = os_time_zone
        self.socket = self.run_dir / "mysqld.sock"
        self.pid_file = self.run_dir / "mariadbd.pid"
        self.proc: Optional[subprocess.Popen] = None

    def _binaries(self) -> None:
        self.mariadbd = _which("mariadbd", "/usr/sbin", "/usr/bin")
        self.install_db = _which("mariadb-install-db", "/usr/bin", "/usr/sbin")
        if not (self.mariadbd and self.install_db):
            raise LocalDatabaseError(MISSING_BINARIES.format(what="MariaDB (mariadbd, mariadb-install-db)"))

    def _server_args(self) -> list[str]:
        # --no-defaults: nothing from /etc/mysql; only 127.0.0.1, socket and pid inside the root
        args = ["--no-defaults", f"--datadir={self.data}", "--innodb-log-file-size=16M",
                "--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=0", "--default-time-zone=+00:00"]
        return args + (["--user=mysql"] if self.as_root else [])

    def _initialised(self) -> bool:
        return (self.root / "initialised").exists()

    def _initialise(self, password: str) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)
        # root@localhost without a password, reached only over the socket inside the root (0700);
        # the TCP superuser gets its password once the server runs (_make_superuser)
        _run([self.install_db, *self._server_args(), "--auth-root-authentication-method=normal", "--skip-test-db",
              f"--log-error={self.log}"], "mariadb-install-db", self.log)
        (self.root / "superuser").unlink(missing_ok=True)
        (self.root / "initialised").write_text("")

    def _pid_and_port(self) -> tuple[Optional[int], Optional[int]]:
        try:
            return int(self.pid_file.read_text().split()[0]), int((self.root / "port").read_text())
        except (OSError, ValueError, IndexError):
            return None, None

    def _start(self, port: int, timeout: float) -> bool:
        if self.as_root and self.log.exists():
            os.chown(self.log, *self._owner())
        log_start = self.log.stat().st_size if self.log.exists() else 0
        with open(os.devnull, "wb") as null:
            self.proc = subprocess.Popen(
                [self.mariadbd, *self._server_args(), f"--socket={self.socket}", f"--pid-file={self.pid_file}",
                 f"--port={port}", f"--bind-address={HOST}", "--skip-name-resolve", f"--log-error={self.log}"],
                stdout=null, stderr=null, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "TZ": self.os_time_zone} if self.os_time_zone else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                new = self.log.read_bytes()[log_start:].decode(errors="replace") if self.log.exists() else ""
                if "Address already in use" in new or "Do you already have another" in new:
                    return False
                raise LocalDatabaseError(f"mariadbd exited with code {self.proc.returncode} on {HOST}:{port}; "
                                         f"its log {self.log} ends:\n{_tail(self.log)}")
            if self.socket.exists() and _port_answers(port):
                return True
            time.sleep(0.1)
        self._kill()
        raise LocalDatabaseError(f"MariaDB did not answer on {HOST}:{port} within {timeout:.0f} s; "
                                 f"its log {self.log} ends:\n{_tail(self.log)}")

    def _ready(self, timeout: float) -> None:
        info = self._require()
        if not (self.root / "superuser").exists():
            self._make_superuser(info.password)
        self._wait_connect(info, timeout)

    def _make_superuser(self, password: str) -> None:
        import pymysql
        con = pymysql.connect(unix_socket=str(self.socket), user="root", password="", autocommit=True,
                              connect_timeout=10)
        with con:
            cur = con.cursor()
            # no passwordless root over TCP; the superuser logs in with its password from 127.0.0.1
            cur.execute("SELECT user, host FROM mysql.user WHERE (user = 'root' AND host <> 'localhost') OR user = ''")
            for user, host in cur.fetchall():
                cur.execute("DROP USER %s@%s", (user, host))
            cur.execute(f"CREATE OR REPLACE USER '{SUPERUSER}'@'%%' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{SUPERUSER}'@'%' WITH GRANT OPTION")
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DEFAULT_DATABASE}`")
        (self.root / "superuser").write_text(SUPERUSER)

    def _client_cursor(self, con):
        return con.cursor()

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _stop(self, pid: int, timeout: float) -> None:
        os.kill(pid, signal.SIGTERM)  # mariadbd's normal shutdown
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.pid == pid:
                try:
                    self.proc.wait(0.2)
                    return
                except subprocess.TimeoutExpired:
                    continue
            if not _pid_alive(pid):
                return
            time.sleep(0.1)
        raise LocalDatabaseError(f"MariaDB (pid {pid}) did not stop within {timeout:.0f} s; "
                                 f"its log {self.log} ends:\n{_tail(self.log)}")

    def _create_database_sql(self, name: str) -> str:
        return f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"

    def _drop_database_sql(self, name: str) -> str:
        return f"DROP DATABASE IF EXISTS `{name}`"

    def _role_sql(self, name: str, database: str, read_only: bool) -> list[str]:
        rights = "SELECT, SHOW VIEW" if read_only else "ALL PRIVILEGES"
        return [f"CREATE USER '{name}'@'%%' IDENTIFIED BY %(pw)s",
                f"GRANT {rights} ON `{database}`.* TO '{name}'@'%'"]
