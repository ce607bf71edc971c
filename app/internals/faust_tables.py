"""Faust table internals: the RocksDB database of each partition of a table.

The scoring agents read and write a micro-batch straight to a partition's RocksDB database
(rocksdict ``Rdict``), which Faust's ``faust.stores.rocksdb.Store`` keeps private: Faust's
per-key path caps a worker near 3,300 writes/s (see :mod:`tables.accounts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.internals.registry import Internal

STORE = "faust.stores.rocksdb:Store"

INTERNALS: tuple[Internal, ...] = (
    Internal(
        "faust-streaming",
        STORE,
        "_db_for_partition",
        "method",
        "opens a partition's database lazily, as Faust's own reads do",
        __name__,
        params=("self", "partition"),
    ),
    Internal(
        "faust-streaming",
        STORE,
        "_dbs",
        "attribute",
        "the databases open now, by partition (a revoked partition's is closed)",
        __name__,
    ),
)


def partition_db(table: Any, partition: int) -> Any:
    """Return the RocksDB database of ``partition`` of ``table``, opening it if needed."""
    return table.data._db_for_partition(partition)


def open_partition_dbs(table: Any) -> Mapping[int, Any]:
    """Return the RocksDB databases of ``table`` open now, by partition (never opens one)."""
    dbs: Mapping[int, Any] = table.data._dbs
    return dbs
