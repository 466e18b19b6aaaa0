"""Config of SQL connections and their jobs: what fails when definitions load, naming the file and
the key with one clear sentence (no server needed)."""

from __future__ import annotations

import pytest
import yaml

from gs_assets.config.loader import load_platform_config
from gs_assets.validators.errors import ConfigError

PG = {"type": "sql", "system": "postgresql", "host": "db.example.com", "database": "billing", "user": "reader"}
MY = {**PG, "system": "mysql"}
OBJECTS = """
custom_objects:
  sub__gc:
    fields:
      external_id: {type: string, max_length: 100}
      product: {type: string, max_length: 255}
"""


def _job(query=None, **kw):
    src = {"object": "subs", "primary_key": ["id"], **({"query": query} if query else {"table": "billing.subs"}),
           **kw.pop("source", {})}
    job = {"connection": "db", "source": src, "destination": "sub__gc", "operation": "upsert",
           "identifiers": ["external_id"],
           "mappings": [{"source": "id", "target": "external_id"}, {"source": "product", "target": "product"}]}
    job.update(kw)
    return job


def _load(tmp_path, conn: dict, job: dict | None = None):
    folder = tmp_path / "config"
    folder.mkdir(exist_ok=True)
    doc = {"connections": {"db": conn}, "jobs": {"subs": job} if job else {}}
    (folder / "jobs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / "objects.yaml").write_text(OBJECTS)
    return load_platform_config(folder)


def _refused(tmp_path, conn, job=None) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, conn, job)
    err = e.value
    assert err.file.endswith("jobs.yaml")
    return err


def test_a_single_select_loads(tmp_path):
    for conn in (PG, MY):
        cfg = _load(tmp_path, conn, _job("SELECT id, product FROM billing.subs WHERE product LIKE 'P%'"))
        assert cfg.jobs["subs"].source.query.startswith("SELECT")
    cfg = _load(tmp_path, PG, _job("WITH s AS (SELECT * FROM billing.subs) SELECT id, product FROM s "
                                   "UNION ALL SELECT id, product FROM billing.old_subs"))
    assert cfg.jobs["subs"].source.query


QUERIES = [
    ("SELECT id, product FROM subs; SELECT 1", ["2 statements", "exactly one SELECT"]),
    ("SELECT id, product FROM subs; DELETE FROM subs", ["2 statements"]),
    ("UPDATE subs SET product = 'x'", ["not a SELECT but UPDATE"]),
    ("DELETE FROM subs", ["not a SELECT but DELETE"]),
    ("INSERT INTO subs (id) SELECT 1", ["not a SELECT but INSERT"]),
    ("SELECT id, product INTO backup FROM subs", ["INTO", "only reads"]),
    ("SELECT id, product FROM subs FOR UPDATE", ["FOR UPDATE", "only reads"]),
    ("DROP TABLE subs", ["not a SELECT but DROP"]),
    ("", ["empty"]),
    ("SELEC id FROM subs", ["not valid"]),
    ("SELEC id", ["does not begin with SELECT"]),  # read as a column `SELEC` named `id`: no statement at all
    ("SHOW TABLES", ["not a SELECT"]),
]


@pytest.mark.parametrize("conn", [PG, MY], ids=["postgresql", "mysql"])
@pytest.mark.parametrize("query, words", QUERIES, ids=[f"q{i}" for i in range(len(QUERIES))])
def test_a_query_that_is_not_one_select_is_refused_at_load(tmp_path, conn, query, words):
    err = _refused(tmp_path, conn, _job(query or " ; "))
    assert err.key == "jobs.subs.source.query", err
    for w in words:
        assert w in err.message, err.message
    assert err.message.count(". ") <= 1 and "\n" not in err.message  # one sentence (two at most), no trace


def test_a_data_modifying_cte_is_refused_postgresql(tmp_path):
    err = _refused(tmp_path, PG, _job("WITH gone AS (DELETE FROM subs RETURNING *) SELECT id, product FROM gone"))
    assert err.key == "jobs.subs.source.query" and "DELETE" in err.message and "only reads" in err.message


def test_a_data_modifying_cte_is_refused_mysql(tmp_path):
    # MySQL has no data-modifying CTE: whatever sqlglot makes of it, it is refused
    err = _refused(tmp_path, MY, _job("WITH gone AS (DELETE FROM subs) SELECT id, product FROM gone"))
    assert err.key == "jobs.subs.source.query" and "DELETE" in err.message


def test_mysql_select_for_share_and_lock_in_share_mode_are_refused(tmp_path):
    for q in ("SELECT id, product FROM subs LOCK IN SHARE MODE", "SELECT id, product FROM subs FOR SHARE"):
        err = _refused(tmp_path, MY, _job(q))
        assert err.key == "jobs.subs.source.query", (q, err)


@pytest.mark.parametrize("conn, key, words", [
    ({**PG, "system": "oracle"}, "connections.db", ["unknown SQL system 'oracle'", "postgresql"]),
    ({k: v for k, v in PG.items() if k != "host"}, "connections.db", ["host", "needs host, database, user"]),
    ({**PG, "tls": {"mode": "verify-full"}}, "connections.db", ["ca_file", "verify-full"]),
    ({**PG, "auth": {"method": "key_pair"}}, "connections.db", ["postgresql takes password", "not 'key_pair'"]),
    ({**PG, "auth": {"env": {"password": "not a var"}}}, "connections.db", ["not an env var name"]),
])
def test_connection_problems_name_file_and_key(tmp_path, conn, key, words):
    err = _refused(tmp_path, conn)
    assert err.key.startswith(key), err
    for w in words:
        assert w in err.message, err.message
    assert "\n" not in err.message


def test_insert_with_a_cursor_is_refused(tmp_path):
    err = _refused(tmp_path, PG, _job(operation="insert", identifiers=[],
                                      source={"cursor": {"column": "updated_at"}}))
    assert err.key == "jobs.subs.operation" and "use upsert" in err.message


def test_a_delete_policy_without_a_delete_source_is_refused(tmp_path):
    err = _refused(tmp_path, PG, _job(deletes={"policy": "delete"}))
    assert err.key == "jobs.subs.deletes" and "soft_delete" in err.message and "key_check" in err.message


def test_a_delete_policy_with_a_soft_delete_column_loads(tmp_path):
    cfg = _load(tmp_path, PG, _job(deletes={"policy": "delete"}, source={"soft_delete": {"column": "deleted"}}))
    assert cfg.jobs["subs"].deletes.policy.value == "delete"
