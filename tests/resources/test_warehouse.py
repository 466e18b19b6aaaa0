"""Warehouse tables follow the data model; adding a field adds its column and keeps the data."""

import duckdb

from gs_assets.model.objects import load_data_model
from gs_assets.engine.warehouse_setup import sync_object_tables
from resources.warehouse import Warehouse


def test_tables_are_created_from_definitions_and_new_fields_keep_data(tmp_path):
    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    model = load_data_model()
    with wh.connect() as con:
        changes = sync_object_tables(con, model)
        assert "created table gs.company" in changes
        con.execute("INSERT INTO gs.company (gsid, name) VALUES ('00000000-0000-0000-0000-000000000001', 'Acme')")
    extra = tmp_path / "objects.yaml"
    extra.write_text("custom_fields:\n  company:\n    tier__gc: {type: dropdown, values: [A, B]}\n")
    with wh.connect() as con:
        changes = sync_object_tables(con, load_data_model(extra))
        assert changes == ["added column gs.company.tier__gc"]
        assert con.execute("SELECT name, tier__gc FROM gs.company").fetchall() == [("Acme", None)]
        assert sync_object_tables(con, load_data_model(extra)) == []


def test_transaction_rolls_back_on_error(tmp_path):
    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    with wh.connect() as con:
        con.execute("CREATE TABLE t (x INT)")
    try:
        with wh.transaction() as con:
            con.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert duckdb.connect(str(tmp_path / "w.duckdb")).execute("SELECT count(*) FROM t").fetchone() == (0,)
