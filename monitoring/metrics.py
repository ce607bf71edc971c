"""Vigil's Prometheus metrics as one bundle built on a registry.

Label values are initialised up front so dashboards show zeros, not gaps, after a start.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from faust.sensors.prometheus import MS_LATENCY_BUCKETS, FaustMetrics
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from models.tiers import ALERTED_TIERS, TIERS
from monitoring.drift import ScoreWindow
from monitoring.faust_sensor import FaustSensor
from monitoring.histograms import BatchHistogram

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
#: Files a worker re-reads when they change (label values of ``vigil_reload_failures_total``).
RELOAD_KINDS = ("rules", "allowlist", "denylist", "suppressions", "model", "challenger_model")
#: Local tables whose size is exported (label values of ``vigil_table_keys``).
TABLES = ("accounts", "counterparty_risk")
#: Name prefix of Faust's own sensor metrics (``vigil_faust_messages_received_total``, ...).
FAUST_PREFIX = "vigil_faust"


def observe_many(histogram: BatchHistogram, values: Sequence[float] | np.ndarray) -> None:
    """Observe many values at once (a micro-batch's latencies or scores)."""
    histogram.observe_many(values)


class VigilMetrics:
    """All ``vigil_*`` metrics of one worker."""

    def __init__(self, registry: CollectorRegistry | None = None, drift_window: int = 5000) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._lag_labels: set[tuple[str, str]] = set()
        self._faust_sensor: FaustSensor | None = None
        #: The last scores, compared with the artifact's validation scores (drift).
        self.recent_scores = ScoreWindow(drift_window)
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
        self.scoring_latency = BatchHistogram(
            "vigil_scoring_latency_seconds",
            "Time to decide one micro-batch: features, rules, scoring and records.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_latency = BatchHistogram(
            "vigil_batch_processing_seconds",
            "Time to process one micro-batch, outputs acknowledged by the broker.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.end_to_end_latency = BatchHistogram(
            "vigil_end_to_end_latency_seconds",
            "Event time to scored record (and alert) acknowledged by the broker.",
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = BatchHistogram(
            "vigil_batch_size",
            "Transactions per scoring micro-batch.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.score = BatchHistogram(
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
        # AML rules (issue 4): records naming each rule, deny list included; labels follow
        # the rules file, so a rule appears once it has fired.
        self.rule_hits = Counter(
            "vigil_rule_hits",
            "AML rule hits in scored records and fan-in alerts, by rule id.",
            ["rule"],
            registry=r,
        )
        self.score_drift = Gauge(
            "vigil_score_drift_psi",
            "Population stability index of the recent scores against the served model's "
            "validation scores (0 = same distribution, > 0.25 = significant shift).",
            registry=r,
        )
        self.score_drift_window = Gauge(
            "vigil_score_drift_window_scores",
            "Recent scores the drift index is computed on.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "vigil_consumer_lag",
            "Messages not yet committed by this worker's consumer group: log end offset "
            "minus committed offset, per assigned source topic partition.",
            ["topic", "partition"],
            registry=r,
        )
        # Model lifecycle: delayed labels, hot swaps, the challenger beside the champion.
        self.labels = Counter(
            "vigil_labels_consumed",
            "Labels read from the labels topic, by verdict (invalid ones go to dead letters).",
            ["label"],
            registry=r,
        )
        self.model_reloads = Counter(
            "vigil_model_reloads",
            "Attempts to load a changed model artifact, by role and result.",
            ["role", "result"],
            registry=r,
        )
        self.reload_failures = Counter(
            "vigil_reload_failures",
            "Versions of a rules, list or model file that could not be loaded on reload "
            "(the worker keeps serving the previous version), by kind of file.",
            ["kind"],
            registry=r,
        )
        self.file_refused = Gauge(
            "vigil_file_refused",
            "1 while the newest version of a watched rules, list or model file could not be "
            "loaded (or the file is gone) and the worker serves an older one, by kind of file.",
            ["kind"],
            registry=r,
        )
        self.challenger_info = Gauge(
            "vigil_challenger_info",
            "The challenger model scored beside the champion (value 1; none when absent).",
            ["version"],
            registry=r,
        )
        self.challenger_score = BatchHistogram(
            "vigil_challenger_score",
            "Calibrated fraud probability from the challenger model (never alerted on).",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        for verdict in ("fraud", "legit"):
            self.labels.labels(verdict)
        for role in ("champion", "challenger"):
            for result in ("loaded", "failed"):
                self.model_reloads.labels(role, result)
        for kind in RELOAD_KINDS:
            self.reload_failures.labels(kind)
            self.file_refused.labels(kind).set(0)
        for outcome in OUTCOMES:
            self.transactions.labels(outcome)
        for tier in ALERTED_TIERS:
            self.alerts.labels(tier)
        for tier in TIERS:
            self.tiers.labels(tier)
        for reason in DEADLETTER_REASONS:
            self.deadletters.labels(reason)
        for table in TABLES:
            self.table_keys.labels(table)

    def file_reloaded(self, kind: str, loaded: bool) -> None:
        """Record a reload of a watched file: a refused version counts and raises the gauge.

        The gauge (not the counter) drives the alert, so it fires as long as the bad file is in
        place and clears as soon as a good version loads, however long that takes.
        """
        if not loaded:
            self.reload_failures.labels(kind).inc()
        self.file_refused.labels(kind).set(0 if loaded else 1)

    def set_model(self, version: str) -> None:
        """Expose ``version`` as the only served model."""
        self.model_info.clear()
        self.model_info.labels(version).set(1)

    def set_challenger(self, version: str | None) -> None:
        """Expose the challenger's version, or none."""
        self.challenger_info.clear()
        if version is not None:
            self.challenger_info.labels(version).set(1)

    def faust_monitor(self) -> FaustSensor:
        """Return Faust's own Prometheus sensor, recording into this registry.

        Installed as ``app.monitor``, it adds Faust's view (messages and events in, sends,
        commits, rebalances, per-topic offsets) under :data:`FAUST_PREFIX` to the same
        ``/metrics`` page; Faust's ``setup_prometheus_sensors`` would add a second page.
        """
        faust = FaustMetrics.create(self.registry, FAUST_PREFIX)
        # Faust names this one ``..._events_runtime_ms``, which `promtool check metrics`
        # rejects (abbreviated unit); same values (ms, like Faust's other latencies).
        self.registry.unregister(faust.events_runtime_latency)
        runtime = Histogram(
            f"{FAUST_PREFIX}_events_runtime_latency",
            "Events runtime in ms",
            buckets=MS_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._faust_sensor = FaustSensor(metrics=faust._replace(events_runtime_latency=runtime))
        return self._faust_sensor

    def render(self) -> bytes:
        """Return the Prometheus text exposition of every metric, Faust's sensor included."""
        if self._faust_sensor is not None:
            self._faust_sensor.flush()
        return generate_latest(self.registry)

    def set_consumer_lag(self, lag: dict[tuple[str, int], int]) -> None:
        """Publish the lag of the assigned partitions, dropping partitions no longer held."""
        current = {(topic, str(partition)): value for (topic, partition), value in lag.items()}
        for labels in set(self._lag_labels) - set(current):
            self.consumer_lag.remove(*labels)
        for labels, value in current.items():
            self.consumer_lag.labels(*labels).set(value)
        self._lag_labels = set(current)
