"""Vigil's Faust sensor records exactly what Faust's own Prometheus sensor records."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.faust_sensor import MAX_PENDING_RUNTIMES
from monitoring.metrics import FAUST_PREFIX, VigilMetrics


class _Owner:
    pass


class _Record:
    """Stands in for a Faust Message or Event (the sensor sets attributes on them)."""


class _Stream:
    def __init__(self, name: str) -> None:
        self.shortlabel = f"Stream: Topic: {name}"
        self.task_owner = _Owner()


def _drive(monitor: Any, streams: list[_Stream], n: int, start: int = 0) -> None:
    tps = [TP("transactions", 0), TP("transactions", 1), TP("transactions.by-account", 0)]
    for i in range(start, start + n):
        tp = tps[i % len(tps)]
        stream = streams[i % len(streams)]
        message, event = _Record(), _Record()
        monitor.on_message_in(tp, i, message)
        state = monitor.on_stream_event_in(tp, i, stream, event)
        monitor.on_stream_event_out(tp, i, stream, event, state)
        if i % 5:  # some messages still in flight
            monitor.on_message_out(tp, i, message)


def _series(text: str, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            timed = "runtime" in s.name and not s.name.endswith("_count")  # wall-clock values
            if s.name.endswith("_created") or timed:
                continue
            name = s.name.removeprefix(prefix)
            out[(name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_sensor_exposes_the_same_series_as_faust_after_traffic_and_a_rebalance() -> None:
    reference_registry = CollectorRegistry()
    reference = PrometheusMonitor(metrics=FaustMetrics.create(reference_registry, "ref"))
    metrics = VigilMetrics()
    sensor = metrics.faust_monitor()
    streams = [_Stream("transactions"), _Stream("transactions.by-account")]

    for monitor in (reference, sensor):
        _drive(monitor, streams, 300)
    metrics.render()  # a scrape between the two bursts
    for monitor in (reference, sensor):
        rebalancing: Any = SimpleNamespace(rebalancing_count=1)
        monitor.on_rebalance_start(rebalancing)  # clears the partition series
        _drive(monitor, streams, 200, start=300)

    want = _series(generate_latest(reference_registry).decode(), "ref_")
    got = _series(metrics.render().decode(), FAUST_PREFIX + "_")
    want = {
        (k[0].replace("events_runtime_ms", "events_runtime_latency"), k[1]): v
        for k, v in want.items()
    }
    got = {k: v for k, v in got.items() if not k[0].startswith("vigil_")}
    assert got == want
    assert got[("messages_received_total", ())] == 500
    assert got[("active_messages", ())] == 100
    assert got[("events_runtime_latency_count", ())] == 500


def test_runtimes_do_not_pile_up_without_scrapes() -> None:
    metrics = VigilMetrics()
    sensor = metrics.faust_monitor()
    _drive(sensor, [_Stream("transactions")], MAX_PENDING_RUNTIMES + 10)
    assert len(sensor._runtimes_s) < MAX_PENDING_RUNTIMES


def test_batch_routes_count_their_messages_and_events_like_per_message_delivery() -> None:
    metrics = VigilMetrics()
    sensor = metrics.faust_monitor()
    tp = TP("transactions", 1)
    sensor.count_batch_in(tp, 41, 40, "score-transactions")
    sensor.count_batch_out(30)  # the rest of the batch still in process
    got = _series(metrics.render().decode(), FAUST_PREFIX + "_")
    assert got[("messages_received_total", ())] == 40
    assert got[("active_messages", ())] == 10
    assert got[("total_events_total", ())] == 40
    assert got[("messages_received_per_topic_total", (("topic", "transactions"),))] == 40
    assert (
        got[
            (
                "messages_received_per_topics_partition",
                (("partition", "1"), ("topic", "transactions")),
            )
        ]
        == 41
    )
    assert (
        got[("total_events_per_stream_total", (("stream", "stream.score-transactions.events"),))]
        == 40
    )
    assert sensor.messages_received_total == 40 and sensor.messages_active == 10


def test_batch_routes_show_faust_stall_detector_their_partitions_are_processed() -> None:
    """Faust's detector reads ``stream_inbound_time``; a batch must set it like an event does."""
    sensor = VigilMetrics().faust_monitor()
    taken, idle = TP("transactions", 1), TP("transactions", 2)
    before = time.monotonic()
    sensor.count_batch_in(taken, 41, 40, "score-transactions")
    assert sensor.stream_inbound_time[taken] >= before
    assert idle not in sensor.stream_inbound_time  # a partition with no batch stays "not started"


class _Consumer:
    def __init__(self, assigned: set[TP]) -> None:
        self._assigned = assigned

    def assignment(self) -> set[TP]:
        return self._assigned


class _App:
    def __init__(self, assigned: set[TP]) -> None:
        self.consumer = _Consumer(assigned)
        self.rebalancing_count = 1


def test_stall_clock_restarts_for_every_assigned_partition_when_recovery_ends() -> None:
    """After a rebalance a partition is not "never started" before its first batch is taken."""
    sensor = VigilMetrics().faust_monitor()
    kept, new, gone = TP("transactions", 0), TP("transactions", 1), TP("transactions", 2)
    app: Any = _App({kept, new})
    sensor.count_batch_in(kept, 10, 5, "score-transactions")
    sensor.count_batch_in(gone, 10, 5, "score-transactions")
    state = sensor.on_rebalance_start(app)
    assert sensor.stream_inbound_time == {}  # Faust forgets every partition's time here
    before = time.monotonic()
    sensor.on_rebalance_end(app, state)
    assert set(sensor.stream_inbound_time) == {kept, new}
    assert min(sensor.stream_inbound_time.values()) >= before
