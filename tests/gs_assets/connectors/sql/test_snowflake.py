"""The Snowflake system against fakesnow: in process (`fakesnow.patch()` stands in for
`snowflake.connector.connect`) for describe, chunked rows and the clock, and as fakesnow's HTTP
server on 127.0.0.1 for key-pair auth, where the real connector signs the login's JWT with the key
the system loaded.

fakesnow ignores credentials, so the login is checked by a thin layer in front of its server
(`_JwtCheck`): it verifies the JWT the connector sends against the public key the test generated and
answers a wrong one with Snowflake's documented login failure (code 390144). What that does not
cover, and only a real account would: the account's RSA_PUBLIC_KEY registration, password logins,
network policies and the warehouse/role grants.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import fakesnow
import jwt
import pytest
import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.responses import JSONResponse

from gs_assets.connectors.rest_api.auth import Secret
from gs_assets.connectors.rest_api.fakes.harness import serve_on_loopback
from gs_assets.connectors.sql.config import SqlConnection
from gs_assets.connectors.sql.systems import system_class
from gs_assets.connectors.sql.systems.base import ConnectFailed
from gs_assets.connectors.sql.systems.snowflake import Snowflake, sf_category

# fakesnow's own notice about an extra copy of each result
pytestmark = pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")

PASSPHRASE = "correct horse battery staple 7"
PASSWORD = "Sn0wfl@ke-pw-2026"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key, passphrase=None) -> str:
    enc = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc).decode()


def _conn(method="key_pair", **kw) -> SqlConnection:
    return SqlConnection(type="sql", system="snowflake", account="fakesnow", user="gsdp_reader", database="BILLING",
                         warehouse="WH", role="READER", auth={"method": method}, **kw)


def _system(rsa_key, passphrase=PASSPHRASE, pem=None, options=None, **kw) -> Snowflake:
    secrets = {"private_key": Secret(pem if pem is not None else _pem(rsa_key, PASSPHRASE))}
    if passphrase is not None:
        secrets["private_key_passphrase"] = Secret(passphrase)
    return Snowflake("warehouse", _conn(**kw), secrets, options=options)


def _setup(sql: list[str], params=None):
    admin = snowflake.connector.connect(account="fakesnow", user="admin", password="x", database="BILLING",
                                        schema="PUBLIC")
    cur = admin.cursor()
    for s in sql:
        cur.execute(s)
    if params:
        cur.executemany(params[0], params[1])
    admin.close()


def _values(table: str, rows: list[tuple]) -> str:
    """One INSERT with every row as literals (fakesnow runs an executemany row by row)."""
    def lit(v):
        return str(v) if isinstance(v, int) else "'" + (v.isoformat(sep=" ") if isinstance(v, datetime) else v) + "'"
    return f"INSERT INTO {table} VALUES " + ", ".join("(" + ", ".join(lit(v) for v in r) + ")" for r in rows)


def test_the_registry_finds_snowflake():
    assert system_class("snowflake") is Snowflake


def test_describe_maps_every_category(rsa_key):
    with fakesnow.patch():
        _setup(["CREATE SCHEMA IF NOT EXISTS BILLING.PUBLIC",
                "CREATE TABLE subs (id NUMBER(38,0), plan VARCHAR, amount NUMBER(12,2), ratio FLOAT, active BOOLEAN, "
                "start_date DATE, updated_at TIMESTAMP_NTZ, billed_at TIMESTAMP_TZ, seen_at TIMESTAMP_LTZ, "
                "attrs VARIANT, tags ARRAY, meta OBJECT, blob BINARY, at_time TIME, seats INT)"])
        with _system(rsa_key) as sf:
            sf.begin_snapshot()
            cols = sf.describe("PUBLIC.subs")
    assert [(c.name, c.category) for c in cols] == [
        ("ID", "integer"), ("PLAN", "text"), ("AMOUNT", "decimal"), ("RATIO", "float"), ("ACTIVE", "boolean"),
        ("START_DATE", "date"), ("UPDATED_AT", "datetime"), ("BILLED_AT", "datetime_tz"),
        ("SEEN_AT", "datetime_tz"), ("ATTRS", "json"), ("TAGS", "json"), ("META", "json"), ("BLOB", "binary"),
        ("AT_TIME", "text"), ("SEATS", "integer")]


def test_types_fakesnow_cannot_create_map_by_type_code():
    # fakesnow (DuckDB) has no GEOGRAPHY/GEOMETRY/VECTOR; the connector's type codes for them:
    assert sf_category(14, None)[0] == "other"  # GEOGRAPHY
    assert sf_category(15, None)[0] == "other"  # GEOMETRY
    assert sf_category(16, None)[0] == "other"  # VECTOR
    assert sf_category(6, None) == ("datetime_tz", "TIMESTAMP_LTZ")
    assert sf_category(0, 0) == ("integer", "NUMBER") and sf_category(0, 4)[0] == "decimal"
    assert sf_category(99, None)[0] == "other"


def test_rows_come_in_chunks_of_fetch_rows_with_bound_parameters(rsa_key):
    base = datetime(2026, 11, 1, 0, 0, 0)
    rows = [(i, f"plan-{i % 3}", Decimal(i) / 4, base + timedelta(minutes=i)) for i in range(1, 251)]
    with fakesnow.patch():
        _setup(["CREATE TABLE subs (id INT, plan VARCHAR, amount NUMBER(12,2), updated_at TIMESTAMP_NTZ)"],
               ("INSERT INTO subs VALUES (%s, %s, %s, %s)", rows))
        with _system(rsa_key, fetch_rows=100) as sf:
            sf.begin_snapshot()
            q = (f"SELECT d.{sf.quote('ID')} AS {sf.quote('id')}, d.{sf.quote('UPDATED_AT')} AS {sf.quote('u')} "
                 f"FROM PUBLIC.subs AS d WHERE d.{sf.quote('UPDATED_AT')} >= {sf.placeholder(1)} "
                 f"AND d.{sf.quote('UPDATED_AT')} < {sf.placeholder(2)} ORDER BY d.{sf.quote('UPDATED_AT')}, "
                 f"d.{sf.quote('ID')}")
            chunks = list(sf.rows(q, [base + timedelta(minutes=11),
                                      (base + timedelta(minutes=241)).replace(tzinfo=timezone.utc)]))
    assert [len(c) for c in chunks] == [100, 100, 30]
    got = [r for c in chunks for r in c]
    assert [r[0] for r in got] == list(range(11, 241))
    assert got[0][1] == base + timedelta(minutes=11)


def test_quote_keeps_the_name_exactly():
    sf = Snowflake("w", _conn(method="password"), {"password": Secret("pw-1234")})
    assert sf.quote("updated_at") == '"updated_at"'
    assert sf.quote('we"ird') == '"we""ird"'


def test_server_now_is_the_server_clock_in_utc(rsa_key):
    with fakesnow.patch():
        with _system(rsa_key) as sf:
            before = datetime.now(timezone.utc)
            now = sf.server_now()
            after = datetime.now(timezone.utc)
    assert now.utcoffset() == timedelta(0)
    # fakesnow's clock is this machine's; a real account's may differ by its NTP skew
    assert before - timedelta(seconds=1) <= now <= after + timedelta(seconds=1)


@pytest.mark.parametrize("passphrase, pem_kind, why", [
    ("not the passphrase", "encrypted", "the passphrase does not open the private key"),
    (None, "encrypted", "the private key is encrypted and no passphrase is set"),
    ("s3cr3t-unneeded-pass", "plain", "a passphrase is set but the private key is not encrypted"),
    (None, "garbage", "the private key is not a PEM private key"),
])
def test_a_key_that_does_not_load_is_connect_failed_without_secrets(rsa_key, passphrase, pem_kind, why):
    pem = {"encrypted": _pem(rsa_key, PASSPHRASE), "plain": _pem(rsa_key),
           "garbage": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"}[pem_kind]
    with fakesnow.patch():
        sf = _system(rsa_key, passphrase=passphrase, pem=pem)
        with pytest.raises(ConnectFailed) as e:
            sf.connect()
    text = str(e.value)
    assert text.startswith("connection warehouse (Snowflake fakesnow): cannot load the private key")
    assert why in text
    assert "GSDP_WAREHOUSE_PRIVATE_KEY" in text
    assert PASSPHRASE not in text and (passphrase or PASSPHRASE) not in text
    assert "BEGIN" not in text.replace("-----BEGIN PRIVATE KEY----- ...", "")
    body = "".join(pem.strip().splitlines()[1:-1])
    assert body[:40] not in text


def test_a_pem_on_one_line_with_escaped_newlines_loads(rsa_key):
    one_line = _pem(rsa_key, PASSPHRASE).replace("\n", "\\n")
    with fakesnow.patch():
        with _system(rsa_key, pem=one_line) as sf:
            assert sf.server_now().tzinfo is not None


# -- key-pair auth through the real connector, against fakesnow's server ---------------------------

class _JwtCheck:
    """ASGI layer before fakesnow's server: a login must carry a JWT signed by the registered key
    (Snowflake's key-pair auth), else the documented failure 390144."""

    def __init__(self, app, public_key, password):
        self.app, self.public_key, self.password, self.logins = app, public_key, password, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/session/v1/login-request":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        raw = b"".join(chunks)
        headers = dict(scope["headers"])
        body = json.loads(gzip.decompress(raw) if headers.get(b"content-encoding") == b"gzip" else raw)
        data = body["data"]
        self.logins.append(data)
        if data.get("AUTHENTICATOR", "SNOWFLAKE") == "SNOWFLAKE":  # a password login
            if data.get("PASSWORD") != self.password:
                resp = JSONResponse({"data": {"nextAction": "RETRY_LOGIN", "authnMethod": "USERNAME_PASSWORD"},
                                     "code": "390100", "message": "Incorrect username or password was specified.",
                                     "success": False})
                return await resp(scope, receive, send)
            return await self._forward(raw, scope, receive, send)
        try:
            claims = jwt.decode(data.get("TOKEN", ""), self.public_key, algorithms=["RS256"])
            der = self.public_key.public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
            fp = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
            who = f"{data['ACCOUNT_NAME']}.{data['LOGIN_NAME']}".upper()
            ok = (data.get("AUTHENTICATOR") == "SNOWFLAKE_JWT" and claims["sub"] == who
                  and claims["iss"] == f"{who}.{fp}")
        except jwt.PyJWTError:
            ok = False
        if not ok:
            resp = JSONResponse({"data": {"nextAction": None, "authnMethod": "KEY_PAIR"}, "code": "390144",
                                 "message": "JWT token is invalid.", "success": False})
            return await resp(scope, receive, send)
        return await self._forward(raw, scope, receive, send)

    async def _forward(self, raw, scope, receive, send):
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()
        return await self.app(scope, replay, send)


@pytest.fixture()
def fakesnow_server(rsa_key):
    import fakesnow.server

    gate = _JwtCheck(fakesnow.server.app, rsa_key.public_key(), PASSWORD)
    server = serve_on_loopback(gate)
    port = int(server.url.rsplit(":", 1)[1])
    seam = {"connect_kwargs": {"host": "127.0.0.1", "port": port, "protocol": "http", "network_timeout": 5,
                               "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}}}
    yield gate, seam
    server.stop()


def test_key_pair_login_through_the_real_connector(rsa_key, fakesnow_server):
    gate, seam = fakesnow_server
    with _system(rsa_key, options=seam) as sf:
        now = sf.server_now()
    assert now.utcoffset() == timedelta(0)
    login = gate.logins[-1]
    assert login["AUTHENTICATOR"] == "SNOWFLAKE_JWT" and login["LOGIN_NAME"] == "gsdp_reader"
    assert login["SESSION_PARAMETERS"]["TIMEZONE"] == "UTC"
    assert "PASSWORD" not in login


def test_a_key_the_account_does_not_know_is_connect_failed(rsa_key, fakesnow_server):
    gate, seam = fakesnow_server
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sf = Snowflake("warehouse", _conn(), {"private_key": Secret(_pem(other, PASSPHRASE)),
                                          "private_key_passphrase": Secret(PASSPHRASE)}, options=seam)
    with pytest.raises(ConnectFailed) as e:
        sf.connect()
    text = str(e.value)
    assert text.startswith("connection warehouse (Snowflake fakesnow): cannot connect")
    assert "JWT token is invalid" in text and "RSA_PUBLIC_KEY" in text
    assert PASSPHRASE not in text and "PRIVATE KEY" not in text
    assert gate.logins, "the connector never reached the login endpoint"


@pytest.mark.parametrize("password, ok", [(PASSWORD, True), ("wrong-pw-Sn0w", False)])
def test_password_login_through_the_real_connector(fakesnow_server, password, ok):
    gate, seam = fakesnow_server
    sf = Snowflake("warehouse", _conn(method="password"), {"password": Secret(password)}, options=seam)
    if ok:
        with sf:
            assert sf.server_now().utcoffset() == timedelta(0)
        assert gate.logins[-1]["PASSWORD"] == PASSWORD
        return
    with pytest.raises(ConnectFailed) as e:
        sf.connect()
    text = str(e.value)
    assert text.startswith("connection warehouse (Snowflake fakesnow): cannot connect")
    assert "Incorrect username or password" in text and "auth.env" in text
    assert password not in text and PASSWORD not in text


# -- end to end: the SQL kind's reader through the Snowflake system and fakesnow -------------------------

SYNC_JOBS = """
connections:
  wh:
    type: sql
    system: snowflake
    account: fakesnow
    user: gsdp_reader
    database: BILLING
    warehouse: WH
    fetch_rows: 500
jobs:
  wh_companies:
    connection: wh
    source:
      object: companies
      table: PUBLIC.companies
      primary_key: [id]
      cursor: {column: changed_at, lookback_seconds: 0, visibility_lag_seconds: 5}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: id, target: external_id}
      - {source: name, target: name}
      - {source: employees, target: employees}
"""


def test_full_then_incremental_sync_into_company(rsa_key, harness, monkeypatch):
    from gs_assets.connectors.sql.reader import sync_dataset
    from gs_assets.connectors.sql.resource import open_system
    from gs_assets.engine.pipeline import apply_pending

    # fakesnow's clock is this machine's: the rows are placed relative to it, well clear of the lag
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    start = now - timedelta(days=2)
    h = harness(SYNC_JOBS)
    monkeypatch.setenv("GSDP_WH_PRIVATE_KEY", _pem(rsa_key, PASSPHRASE))
    monkeypatch.setenv("GSDP_WH_PRIVATE_KEY_PASSPHRASE", PASSPHRASE)

    def sync():
        out = sync_dataset(h.warehouse, h.cfg, open_system("wh", h.cfg.connections["wh"]),
                           connection="wh", source_object="companies")
        assert out.error is None, out.error
        return out, apply_pending(h.warehouse, h.cfg, "company")

    with fakesnow.patch():
        _setup(["CREATE TABLE companies (id NUMBER(38,0), name VARCHAR, employees NUMBER(38,0), "
                "changed_at TIMESTAMP_NTZ)",
                _values("companies", [(i, f"Company {i}", i * 10, start + timedelta(minutes=i))
                                      for i in range(1, 1201)])])
        out, runs = sync()
        assert (out.mode, out.records, out.pages) == ("full", 1200, 3)
        assert [(r.rows_read, r.inserted, r.updated, r.rejected) for r in runs] == [(1200, 1200, 0, 0)]
        assert out.cursor_to == (start + timedelta(minutes=1200)).isoformat()

        later = now - timedelta(hours=1)
        _setup([f"UPDATE companies SET employees = employees + 1, changed_at = '{later.isoformat(sep=' ')}' "
                "WHERE id <= 10",
                _values("companies", [(i, f"Company {i}", 7, later + timedelta(seconds=i)) for i in range(1201, 1206)]
                        + [(1206, "Company 1206", 7, now + timedelta(hours=1))])])  # beyond now - lag: next sync's
        out, runs = sync()
    assert out.mode == "incremental"
    # the row at the stored cursor is read again (closed lower bound) and absorbed by the upsert
    assert out.records == 16
    assert [(r.rows_read, r.inserted, r.updated, r.unchanged) for r in runs] == [(16, 5, 10, 1)]
    assert h.rows("SELECT count(*), sum(employees) FROM gs.company") == [(1205, sum(i * 10 for i in range(1, 1201))
                                                                           + 10 + 35)]


def test_connection_check_and_a_dropped_table(rsa_key, harness, monkeypatch):
    from gs_assets.connectors.sql.connection_test import connection_check
    from gs_assets.connectors.sql.reader import sync_dataset
    from gs_assets.connectors.sql.resource import open_system

    h = harness(SYNC_JOBS)
    monkeypatch.setenv("GSDP_WH_PRIVATE_KEY", _pem(rsa_key, PASSPHRASE))
    monkeypatch.setenv("GSDP_WH_PRIVATE_KEY_PASSPHRASE", PASSPHRASE)
    with fakesnow.patch():
        _setup(["CREATE TABLE companies (id NUMBER(38,0), name VARCHAR, employees NUMBER(38,0), "
                "changed_at TIMESTAMP_NTZ)"])
        check = connection_check(h.cfg, "wh")
        assert check.ok, check.error
        assert dict(check.lines)["dataset companies"].startswith("table PUBLIC.companies: OK, reads 4 of its 4")
        _setup(["DROP TABLE companies"])
        out = sync_dataset(h.warehouse, h.cfg, open_system("wh", h.cfg.connections["wh"]), connection="wh",
                           source_object="companies")
    assert "cannot read PUBLIC.companies" in out.error and "Nothing was loaded" in out.error and out.loads == []

    monkeypatch.setenv("GSDP_WH_PRIVATE_KEY_PASSPHRASE", "not-the-passphrase-42")
    check = connection_check(h.cfg, "wh")
    assert not check.ok and "the passphrase does not open the private key" in check.error
    assert "not-the-passphrase-42" not in check.error and PASSPHRASE not in check.error
