"""Vigil's Prometheus metrics as one bundle built on a registry.

Label values are initialised up front so dashboards show zeros, not gaps, after a start.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from models.tiers import ALERTED_TIERS, TIERS

OUTCOMES = ("scored", "invalid", "replayed", "repartitioned")
#: Dead-letter reasons are the name of the offending field.
DEADLETTER_REASONS = ("payload", "tx_id", "ts", "account_id", "amount", "currency", "type")
#: Millisecond-range buckets (seconds), up to a minute for backlogs and replays.
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)
SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))


class VigilMetrics:
    """All ``vigil_*`` metrics of one worker."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.transactions = Counter(
            "vigil_transactions_consumed",
            "Transactions consumed, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.alerts = Counter("vigil_alerts", "Alerts sent, by tier.", ["tier"], registry=r)
        self.tiers = Counter(
            "vigil_transactions_tiered",
            "Scored transactions, by final tier.",
            ["tier"],
            registry=r,
        )
        self.deadletters = Counter(
            "vigil_deadletters",
            "Messages sent to the dead-letter topic, by reason (field).",
            ["reason"],
            registry=r,
        )
        self.scoring_latency = Histogram(
            "vigil_scoring_latency_seconds",
            "Time to compute features and score one micro-batch.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_latency = Histogram(
            "vigil_batch_processing_seconds",
            "Time to process one micro-batch, outputs acknowledged by the broker.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.end_to_end_latency = Histogram(
            "vigil_end_to_end_latency_seconds",
            "Event time to scored record (and alert) acknowledged by the broker.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = Histogram(
            "vigil_batch_size",
            "Transactions per scoring micro-batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.score = Histogram(
            "vigil_score",
            "Calibrated fraud probability of scored transactions.",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "vigil_model_info",
            "The model version being served (value 1).",
            ["version"],
            registry=r,
        )
        self.table_keys = Gauge(
            "vigil_table_keys",
            "Keys in a local table (RocksDB estimate).",
            ["table"],
            registry=r,
        )
        for outcome in OUTCOMES:
            self.transactions.labels(outcome)
        for tier in ALERTED_TIERS:
            self.alerts.labels(tier)
        for tier in TIERS:
            self.tiers.labels(tier)
        for reason in DEADLETTER_REASONS:
            self.deadletters.labels(reason)

    def set_model(self, version: str) -> None:
        """Expose ``version`` as the only served model."""
        self.model_info.clear()
        self.model_info.labels(version).set(1)
