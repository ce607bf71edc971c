"""Per-counterparty risk from delayed labels, readable by every worker.

A :func:`faust.App.GlobalTable`: every worker holds all of it, because transactions are
partitioned by *account* and any account can pay any counterparty. Only the
counterparty-risk agent writes it, from labels re-keyed by counterparty, so each key has one
writer; the other workers apply its changelog as standby updates.
"""

from __future__ import annotations

from typing import Any

from app.internals import faust_tables
from app.kafka.instance import app
from models.counterparty_risk import CounterpartyRisk

counterparty_risk_table = app.GlobalTable(
    "counterparty_risk",
    partitions=app.settings.partitions,
    key_type=bytes,
    value_type=bytes,
    help="Labelled transactions and confirmed frauds per counterparty_id, by label day.",
)


class CounterpartyRiskStore:
    """Typed read access to the global counterparty-risk table."""

    def __init__(self, table: Any = counterparty_risk_table) -> None:
        self.table = table

    def get(self, counterparty_id: str, partition: int | None = None) -> CounterpartyRisk | None:
        """Return the counterparty's risk state, if any label about it has arrived.

        With ``partition`` (the key's murmur2 partition, where its only writer put it) the
        lookup reads that RocksDB database directly: Faust's table lookup of a key it does
        not hold searches every partition and runs its sensors, several microseconds per
        transaction on the scoring path.
        """
        key = counterparty_id.encode()
        if partition is None:
            raw = self.table.get(key)
        else:
            db = faust_tables.open_partition_dbs(self.table).get(partition)
            raw = None if db is None else db.get(key)
        return None if raw is None else CounterpartyRisk.from_bytes(bytes(raw))
