"""Rows as the landing keeps them: Arrow record batches of text columns.

A system whose driver gives Python values (most DB-API drivers) has them converted here: by Arrow
where it infers the values' type (vectorised), per value where it does not (mixed types, JSON,
out-of-range numbers). Text, so every chunk has the same schema whatever Arrow inferred (a
decimal's precision differs between chunks), and a value reads the same in the object, the
rejects and the stored cursor.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc

JSON = "json"


def text(v: Any) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    return str(v)


def column_array(values: list, category: str) -> pa.Array:
    if category != JSON:
        try:
            arr = pa.array(values)
            if pa.types.is_string(arr.type):
                return arr
            if not (pa.types.is_null(arr.type) or pa.types.is_struct(arr.type) or pa.types.is_list(arr.type)
                    or pa.types.is_binary(arr.type)):
                return arr.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, ValueError):
            pass
    return pa.array([text(v) for v in values], type=pa.string())


def rows_to_batch(rows: Sequence[tuple], names: Sequence[str], categories: Sequence[str]) -> pa.RecordBatch:
    cols = list(zip(*rows)) if rows else [[] for _ in names]
    return pa.RecordBatch.from_arrays([column_array(list(cols[i]), categories[i]) for i in range(len(names))],
                                      names=list(names))


def record_keys(arrays: Sequence[pa.Array]) -> pa.Array:
    """The text of each row's key: the value, or the parts joined by ':' for a composite key."""
    texts = [a.cast(pa.string()) for a in arrays]
    if len(texts) == 1:
        return texts[0]
    return pc.binary_join_element_wise(*[pc.fill_null(t, "") for t in texts], ":")
