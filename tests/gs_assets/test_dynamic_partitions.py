"""Adding a file partition that exists is not an error, even when two processes add the same new
key at once (two `gsdp run` on a new file): the race is made certain by holding both adders
between Dagster's look-up of existing keys and its insert."""

import threading
from contextlib import contextmanager

import pytest

from gs_assets.dynamic_partitions import add_partitions
from tests.dagster_helpers import persistent_instance

NAME = "files__crm__companies"


class _Conn:
    """A storage connection whose first insert into the partitions table waits for the other
    thread's, so both have looked up the key (and found nothing) before either inserts."""

    def __init__(self, conn, barrier, held):
        self._conn, self._barrier, self._held = conn, barrier, held

    def execute(self, stmt, *args, **kwargs):
        table = getattr(stmt, "table", None)
        if getattr(stmt, "is_insert", False) and getattr(table, "name", "") == "dynamic_partitions" \
                and threading.get_ident() not in self._held:
            self._held.add(threading.get_ident())
            self._barrier.wait(timeout=60)
        return self._conn.execute(stmt, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _two_racing_processes(tmp_path, monkeypatch):
    """Two instances on one Dagster home, as two `gsdp run` processes have (each storage object
    serialises its own threads, so one instance could not race with itself)."""
    barrier, held = threading.Barrier(2), set()
    instances = [persistent_instance(tmp_path) for _ in range(2)]
    for instance in instances:
        storage = instance._event_storage  # noqa: SLF001 - the test reaches into the storage to force the race

        def index_connection(real=storage.index_connection):
            @contextmanager
            def wrapped():
                with real() as conn:
                    yield _Conn(conn, barrier, held)
            return wrapped()

        monkeypatch.setattr(storage, "index_connection", index_connection)
    return instances


def _both(instances, add) -> list:
    errors: list = []

    def one(instance):
        try:
            add(instance)
        except Exception as e:  # noqa: BLE001 - collected and asserted
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_the_race_is_real_dagster_alone_loses_it(tmp_path, monkeypatch):
    instances = _two_racing_processes(tmp_path, monkeypatch)
    errors = _both(instances, lambda i: i.add_dynamic_partitions(NAME, ["in/new.csv"]))
    assert len(errors) == 1 and "IntegrityError" in type(errors[0]).__name__, errors


def test_two_adders_of_one_new_partition_both_succeed(tmp_path, monkeypatch):
    instances = _two_racing_processes(tmp_path, monkeypatch)
    assert _both(instances, lambda i: add_partitions(i, NAME, ["in/new.csv", "in/other.csv"])) == []
    assert sorted(instances[0].get_dynamic_partitions(NAME)) == ["in/new.csv", "in/other.csv"]


def test_adding_existing_keys_adds_only_the_missing_ones(tmp_path):
    instance = persistent_instance(tmp_path)
    add_partitions(instance, NAME, ["in/a.csv"])
    add_partitions(instance, NAME, ["in/a.csv", "in/b.csv", "in/b.csv"])
    add_partitions(instance, NAME, [])
    assert sorted(instance.get_dynamic_partitions(NAME)) == ["in/a.csv", "in/b.csv"]


def test_other_errors_are_not_swallowed(tmp_path, monkeypatch):
    instance = persistent_instance(tmp_path)

    def broken(*_a, **_k):
        raise RuntimeError("storage is down")

    monkeypatch.setattr(instance, "add_dynamic_partitions", broken)
    with pytest.raises(RuntimeError, match="storage is down"):
        add_partitions(instance, NAME, ["in/a.csv"])
