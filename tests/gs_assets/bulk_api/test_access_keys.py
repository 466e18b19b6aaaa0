"""Bulk API access keys: shown once, stored hashed, checked in constant time, scoped to jobs,
rotated and revoked; managed by the installed `gsdp keys` command."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gs_assets.connectors.bulk_upload import access_keys as ak

GSDP = Path(sys.executable).parent / "gsdp"


@pytest.fixture
def con(tmp_path):
    c = ak.connect(tmp_path / "bulk.sqlite")
    yield c
    c.close()


def test_a_key_is_shown_once_and_stored_only_as_a_hash(con, tmp_path):
    key, full = ak.create_key(con, "billing export", ["subscriptions"])
    assert full.startswith(f"gsdp_{key.key_id}_") and len(full) > 40
    raw = (tmp_path / "bulk.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("bulk.sqlite-*"))
    assert full.split("_", 2)[2].encode() not in raw
    assert ak.verify(con, full).key_id == key.key_id


@pytest.mark.parametrize("presented", [None, "", "nonsense", "gsdp_deadbeef_x", "gsdp__", "gsdp_%s_wrong"])
def test_missing_malformed_unknown_or_wrong_keys_are_refused(con, presented):
    key, _ = ak.create_key(con, "crm")
    if presented and "%s" in presented:
        presented = presented % key.key_id
    assert ak.verify(con, presented) is None


def test_scope_rotation_and_revocation(con):
    key, full = ak.create_key(con, "crm", ["companies"])
    assert key.allows("companies") and not key.allows("usage")
    everything, _ = ak.create_key(con, "admin")
    assert everything.allows("usage")
    _, new = ak.rotate_key(con, key.key_id)
    assert ak.verify(con, full) is None and ak.verify(con, new).key_id == key.key_id
    ak.revoke_key(con, key.key_id)
    assert ak.verify(con, new) is None
    with pytest.raises(ak.AccessKeyError, match="revoked"):
        ak.rotate_key(con, key.key_id)


@pytest.mark.slow  # `gsdp keys` in subprocesses
def test_gsdp_keys_command(tmp_path):
    env = {**os.environ, "GSDP_BULK_DB": str(tmp_path / "bulk.sqlite"),
           "GSDP_CONFIG_DIR": str(Path(__file__).resolve().parents[3] / "config")}

    def run(*args, ok=True):
        p = subprocess.run([str(GSDP), "keys", *args], env=env, capture_output=True, text=True, timeout=120)
        assert (p.returncode == 0) == ok, p.stdout + p.stderr
        return p

    created = run("create", "--name", "crm sync", "--jobs", "crm_companies,crm_users").stdout
    full = created.splitlines()[1]
    key_id = full.split("_")[1]
    listed = run("list").stdout
    assert key_id in listed and "crm sync" in listed and "crm_companies, crm_users" in listed
    assert full not in listed and full.split("_", 2)[2] not in listed
    assert "unknown job 'nope'" in run("create", "--name", "x", "--jobs", "nope", ok=False).stderr
    rotated = run("rotate", key_id).stdout.splitlines()[1]
    with sqlite3.connect(tmp_path / "bulk.sqlite") as c:
        assert ak.verify(c, full) is None and ak.verify(c, rotated).key_id == key_id
    assert "revoked key" in run("revoke", key_id).stdout
    assert "no access key 'ffff'" in run("rotate", "ffff", ok=False).stderr
