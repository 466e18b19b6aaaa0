"""Registering file partitions (Dagster dynamic partitions) so that a key that exists is never an
error: two `gsdp run` on one new file, a chain and a schedule at once, all may add the same key.

Dagster's `add_dynamic_partitions` already skips keys it finds, but between its look-up and its
insert another process can add the same key, and the loser gets the storage's unique-constraint
error (a raw SQLAlchemy IntegrityError). Every place that adds file partitions goes through
`add_partitions`, which tolerates that race: on an integrity error it looks again and adds only
what is still missing.
"""

from __future__ import annotations

from typing import Sequence

import dagster as dg

ATTEMPTS = 5


def _is_integrity_error(e: BaseException) -> bool:
    try:
        from sqlalchemy.exc import IntegrityError
    except ImportError:  # pragma: no cover - Dagster's storages need SQLAlchemy
        IntegrityError = ()  # noqa: N806
    while e is not None:
        if isinstance(e, IntegrityError) or type(e).__name__ == "IntegrityError":  # sqlite3 / psycopg too
            return True
        e = e.__cause__ or e.__context__
    return False


def add_partitions(instance: dg.DagsterInstance, partitions_name: str, keys: Sequence[str]) -> None:
    """Add the keys of `partitions_name` that do not exist yet; a key added at the same time by
    another process is fine (looked up again, never an error)."""
    keys = list(dict.fromkeys(keys))
    for attempt in range(ATTEMPTS):
        if not keys:
            return
        try:
            instance.add_dynamic_partitions(partitions_name, keys)  # adds only the keys it does not find
            return
        except Exception as e:  # noqa: BLE001 - only a lost race is tolerated
            if not _is_integrity_error(e) or attempt == ATTEMPTS - 1:
                raise
        # Another process added some of them between Dagster's look-up and its insert: look again.
        keys = [k for k in keys if not instance.has_dynamic_partition(partitions_name, k)]
