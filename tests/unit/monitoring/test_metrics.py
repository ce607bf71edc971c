"""The metrics bundle: names, initialised label values, Faust's sensor, lag bookkeeping."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.tiers import ALERTED_TIERS, TIERS
from monitoring.histograms import BatchHistogram
from monitoring.lag import consumer_lag
from monitoring.metrics import (
    DEADLETTER_REASONS,
    LATENCY_BUCKETS_S,
    OUTCOMES,
    TABLES,
    VigilMetrics,
    observe_many,
)


def _samples(metrics: VigilMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_every_label_value_is_exposed_at_zero_before_any_traffic() -> None:
    samples = _samples(VigilMetrics())
    assert {lb["outcome"] for lb, _ in samples["vigil_transactions_consumed_total"]} == set(
        OUTCOMES
    )
    assert {lb["tier"] for lb, _ in samples["vigil_alerts_total"]} == set(ALERTED_TIERS)
    assert {lb["tier"] for lb, _ in samples["vigil_transactions_tiered_total"]} == set(TIERS)
    assert {lb["reason"] for lb, _ in samples["vigil_deadletters_total"]} == set(DEADLETTER_REASONS)
    assert {lb["table"] for lb, _ in samples["vigil_table_keys"]} == set(TABLES)
    for name in ("vigil_transactions_consumed_total", "vigil_alerts_total", "vigil_table_keys"):
        assert all(v == 0 for _, v in samples[name])
    assert samples["vigil_score_drift_psi"] == [({}, 0.0)]
    assert samples["vigil_score_drift_window_scores"] == [({}, 0.0)]


def test_latency_buckets_resolve_milliseconds() -> None:
    assert LATENCY_BUCKETS_S[0] <= 0.001
    assert sum(1 for b in LATENCY_BUCKETS_S if b <= 0.1) >= 8
    assert list(LATENCY_BUCKETS_S) == sorted(LATENCY_BUCKETS_S)
    metrics = VigilMetrics()
    metrics.end_to_end_latency.observe(0.004)
    buckets = {
        lb["le"]: v for lb, v in _samples(metrics)["vigil_end_to_end_latency_seconds_bucket"]
    }
    assert buckets["0.0025"] == 0 and buckets["0.005"] == 1


def test_faust_sensor_records_into_the_same_registry_under_the_vigil_prefix() -> None:
    metrics = VigilMetrics()
    monitor = metrics.faust_monitor()
    monitor.count("probe", 3)
    samples = _samples(metrics)
    assert samples["vigil_faust_metrics_by_name"] == [({"metric": "probe"}, 3.0)]
    assert "vigil_faust_events_runtime_latency_bucket" in samples
    assert not any(name.endswith("_ms_bucket") for name in samples)
    assert all(name.startswith("vigil_") for name in samples)


def test_model_info_shows_only_the_served_version() -> None:
    metrics = VigilMetrics()
    metrics.set_model("v1")
    metrics.set_model("v2")
    assert _samples(metrics)["vigil_model_info"] == [({"version": "v2"}, 1.0)]


def test_consumer_lag_gauge_follows_the_assignment() -> None:
    metrics = VigilMetrics()
    metrics.set_consumer_lag({("transactions", 0): 5, ("transactions", 1): 0})
    got = {(lb["topic"], lb["partition"]): v for lb, v in _samples(metrics)["vigil_consumer_lag"]}
    assert got == {("transactions", "0"): 5.0, ("transactions", "1"): 0.0}
    metrics.set_consumer_lag({("transactions", 1): 7})  # partition 0 moved to another worker
    got = {(lb["topic"], lb["partition"]): v for lb, v in _samples(metrics)["vigil_consumer_lag"]}
    assert got == {("transactions", "1"): 7.0}


def test_consumer_lag_is_end_minus_committed_never_negative() -> None:
    ends = {"a": 100, "b": 50, "c": 10, "d": None, "e": 30}
    committed = {"a": 40, "b": 60, "c": None, "e": None}
    earliest = {"c": 4}
    assert consumer_lag(ends, committed, earliest) == {"a": 60, "b": 0, "c": 6, "e": 30}
    assert consumer_lag({}, {}) == {}


def test_score_window_is_sized_by_the_drift_setting() -> None:
    metrics = VigilMetrics(drift_window=3)
    metrics.recent_scores.add([0.1, 0.2, 0.3, 0.4])
    assert len(metrics.recent_scores) == 3


def test_observe_many_equals_observing_each_value() -> None:
    values = [0.0, 0.0005, 0.0007, 0.01, 0.3, 0.3, 59.0, 61.0, 1e9, float("nan")]
    one_by_one = Histogram("one", "h", buckets=LATENCY_BUCKETS_S, registry=CollectorRegistry())
    batched = BatchHistogram("many", "h", buckets=LATENCY_BUCKETS_S, registry=CollectorRegistry())
    for v in values:
        if v == v:  # observe(nan) would poison the sum; observe_many leaves it out
            one_by_one.observe(v)
    observe_many(batched, values)
    observe_many(batched, [])

    def samples(h: Histogram | BatchHistogram) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name.split("_", 1)[1], s.labels, s.value)
            for m in h.collect()
            for s in m.samples
            if not s.name.endswith("_created")
        ]

    assert samples(batched) == samples(one_by_one)
    assert ("count", {}, 9.0) in samples(batched)


def test_batch_histograms_expose_what_prometheus_histograms_expose() -> None:
    buckets = (1, 2.5, 10)
    reference = CollectorRegistry()
    ours = CollectorRegistry()
    plain = Histogram("vigil_h", "Help text.", buckets=buckets, registry=reference)
    batched = BatchHistogram("vigil_h", "Help text.", buckets=buckets, registry=ours)
    for value in (0.5, 1.0, 2.0, 9.0, 11.0, -3.0):
        plain.observe(value)
        batched.observe(value)

    def text(registry: CollectorRegistry) -> list[str]:
        lines = generate_latest(registry).decode().splitlines()
        return [line for line in lines if "_created" not in line]

    assert text(ours) == text(reference)
    assert 'vigil_h_bucket{le="1.0"} 3.0' in text(ours)
    created = [line for line in generate_latest(ours).decode().splitlines() if "_created" in line]
    assert created[-1].startswith("vigil_h_created ")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        BatchHistogram("vigil_h", "Again.", buckets=buckets, registry=ours)
