"""TLS to PostgreSQL as the connection's `tls` says, against a server whose certificate a CA made by
the test signed: `verify-full` against that CA syncs over TLS; another CA, or a host name the
certificate does not name, is refused with a clear paragraph (`verify-ca` accepts the latter);
`require` uses TLS without a CA file."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gs_assets.demo.local_databases import LocalPostgres
from tests.gs_assets.connectors.sql.sql_harness import SqlHarness, sql_job

# A PostgreSQL server of its own: the full suite (CI) runs them, the fast lane does not.
pytestmark = pytest.mark.slow

OBJECTS = """
custom_objects:
  sub__gc:
    fields:
      external_id: {type: string, max_length: 100}
      product: {type: string, max_length: 255}
"""


def _ca(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return key, cert


def _server_cert(ca_key, ca_cert, hosts):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    san = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h) for h in hosts]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(san), critical=False).sign(ca_key, hashes.SHA256()))
    return key, cert


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls_server():
    """A PostgreSQL of its own with ssl on (a certificate for `localhost` only)."""
    root = Path(tempfile.mkdtemp(prefix=f"gsdp-sql-{os.getpid()}-tls-"))
    root.chmod(0o711)  # the postgres user must reach the server's root inside
    server = LocalPostgres(root / "pg")
    info = server.start()
    ca_key, ca_cert = _ca("gsdp test CA")
    key, cert = _server_cert(ca_key, ca_cert, ["localhost"])
    data = server.data
    (data / "server.crt").write_bytes(_pem(cert))
    (data / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    os.chmod(data / "server.key", 0o600)
    if os.geteuid() == 0:
        st = data.stat()
        for f in ("server.crt", "server.key"):
            os.chown(data / f, st.st_uid, st.st_gid)
    with info.connect() as c:
        c.execute("ALTER SYSTEM SET ssl = on")
        c.execute("SELECT pg_reload_conf()")
    (root / "ca.pem").write_bytes(_pem(ca_cert))
    (root / "other-ca.pem").write_bytes(_pem(_ca("another CA")[1]))
    db = server.create_database("tlsdb")
    with db.connect() as c:
        c.execute("CREATE TABLE subs (id int PRIMARY KEY, product text)")
        c.execute("INSERT INTO subs VALUES (1, 'a'), (2, 'b')")
    try:
        yield root, db
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _harness(tmp_path, monkeypatch, db, tls: dict, host: str = "localhost"):
    job = sql_job("subs", "sub__gc", ["external_id"], {"id": "external_id", "product": "product"}, table="subs")
    return SqlHarness(tmp_path, monkeypatch, db, {"subs": job}, objects_yaml=OBJECTS,
                      connection_options={"tls": tls, "host": host, "connect_timeout_seconds": 10})


def test_verify_full_against_the_servers_ca_syncs_over_tls(tmp_path, monkeypatch, tls_server):
    root, db = tls_server
    h = _harness(tmp_path, monkeypatch, db, {"mode": "verify-full", "ca_file": str(root / "ca.pem")})
    with h.system() as s:
        with s.db.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone()[0] is True
    out, runs = h.run("subs")
    assert runs[0].inserted == 2


def test_verify_full_against_another_ca_is_refused_clearly(tmp_path, monkeypatch, tls_server):
    root, db = tls_server
    h = _harness(tmp_path, monkeypatch, db, {"mode": "verify-full", "ca_file": str(root / "other-ca.pem")})
    out = h.sync("subs")
    assert out.error.startswith("connection db (PostgreSQL localhost:") and "certificate verify failed" in out.error
    assert "tls settings" in out.error and out.loads == []


def test_verify_full_refuses_a_host_the_certificate_does_not_name(tmp_path, monkeypatch, tls_server):
    root, db = tls_server
    h = _harness(tmp_path, monkeypatch, db, {"mode": "verify-full", "ca_file": str(root / "ca.pem")},
                 host="127.0.0.1")  # the certificate names localhost only
    out = h.sync("subs")
    assert out.error.startswith("connection db (PostgreSQL 127.0.0.1:") and "does not match host name" in out.error
    assert out.loads == []
    h = _harness(tmp_path, monkeypatch, db, {"mode": "verify-ca", "ca_file": str(root / "ca.pem")}, host="127.0.0.1")
    out, runs = h.run("subs")  # verify-ca checks the signature, not the name
    assert runs[0].inserted == 2


def test_require_uses_tls_without_checking_the_certificate(tmp_path, monkeypatch, tls_server):
    root, db = tls_server
    h = _harness(tmp_path, monkeypatch, db, {"mode": "require"})
    with h.system() as s:
        with s.db.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone()[0] is True
