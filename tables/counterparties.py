"""Per-counterparty AML state (fan-in), keyed by counterparty_id.

A normal Faust table (RocksDB store, changelog topic, recovery, standbys), partitioned like
the ``transactions.by-counterparty`` topic that feeds it. The fan-in agent reads and writes it
a micro-batch at a time through :class:`tables.accounts.AccountStore` (one RocksDB write batch
and one changelog record per touched counterparty), the same records Faust's per-key path
would write. Values are the JSON state of :class:`models.aml.FanInEngine`.
"""

from __future__ import annotations

from app.kafka.instance import app

counterparty_aml_table = app.Table(
    "counterparty_aml",
    partitions=app.settings.partitions,
    key_type=bytes,
    value_type=bytes,
    help="Fan-in state per counterparty_id (models.aml.engine.FanInEngine).",
)
