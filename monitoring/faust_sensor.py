"""Faust's own Prometheus sensor, made cheap enough for the per-message hooks.

Faust's ``PrometheusMonitor`` updates about ten Prometheus values for every message and
event (each a locked update, plus three ``.labels()`` look-ups): about 12 us an event on the
development machine, for a worker that spends ~200 us an event in total. This subclass keeps
plain counts in the four per-message hooks and writes them into the very same series when
``/metrics`` is scraped (:meth:`FaustSensor.flush`). Every other hook (commits, sends,
rebalances, assignments, web requests) is Faust's, unchanged.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

#: Event runtimes kept between two scrapes at most; beyond, they go to the histogram at once.
MAX_PENDING_RUNTIMES = 4096


class FaustSensor(PrometheusMonitor):  # type: ignore[misc]
    """``PrometheusMonitor`` whose per-message counts are published at scrape time."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The series written at scrape time (Faust's own bundle, given to its constructor).
        self._faust_metrics: FaustMetrics = kwargs["metrics"]
        self._received = 0
        self._active_messages = 0
        self._events = 0
        self._active_events = 0
        self._per_topic: dict[str, int] = {}
        self._tp_offset: dict[Any, int] = {}
        self._per_stream: dict[int, list[Any]] = {}  # id -> [stream, count]
        self._runtimes_s: list[float] = []
        self._batch_events: dict[str, int] = {}  # batch routes' events by stream label

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Count a consumed message."""
        Monitor.on_message_in(self, tp, offset, message)
        self._received += 1
        self._active_messages += 1
        topic = tp.topic
        self._per_topic[topic] = self._per_topic.get(topic, 0) + 1
        self._tp_offset[tp] = offset

    def count_batch_in(self, tp: Any, last_offset: int, n: int, stream: str) -> None:
        """Count ``n`` messages of a batch route (app.kafka.batch_delivery) as consumed.

        They are also ``n`` events of the route's agent, reported as stream ``stream``, and,
        as ``Monitor.on_stream_event_in`` records, the partition's stream has taken an event
        now: Faust's stall detector reads that time (a batch route that never set it was
        reported as "Stream has not started processing" on every check).
        """
        self.stream_inbound_time[tp] = monotonic()
        self.events_total += n
        self._events += n
        self._batch_events[stream] = self._batch_events.get(stream, 0) + n
        self.messages_received_total += n
        self.messages_active += n
        self.messages_received_by_topic[tp.topic] += n
        self.tp_read_offsets[tp] = last_offset
        self._received += n
        self._active_messages += n
        topic = tp.topic
        self._per_topic[topic] = self._per_topic.get(topic, 0) + n
        self._tp_offset[tp] = last_offset

    def count_batch_out(self, n: int) -> None:
        """Count ``n`` messages of a batch route as fully processed."""
        self.messages_active -= n
        self._active_messages -= n

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Count a message as fully processed."""
        Monitor.on_message_out(self, tp, offset, message)
        self._active_messages -= 1

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        """Count an event entering a stream."""
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        self._events += 1
        self._active_events += 1
        entry = self._per_stream.get(id(stream))
        if entry is None or entry[0] is not stream:
            entry = self._per_stream[id(stream)] = [stream, 0]
        entry[1] += 1
        return state

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        """Count an event leaving a stream, keeping its runtime for the histogram."""
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)
        self._active_events -= 1
        if state is not None:
            runtimes = self._runtimes_s
            runtimes.append(self.events_runtime[-1])
            if len(runtimes) >= MAX_PENDING_RUNTIMES:  # nobody scrapes: do not grow
                self._observe_runtimes()

    def on_rebalance_end(self, app: Any, state: dict[str, Any]) -> None:
        """Restart the stall detector's clock of every assigned partition: recovery is over.

        Faust's ``Monitor`` forgets every ``stream_inbound_time`` when a rebalance starts, and
        its detector measures a partition without one from the consumer thread's start. So
        after a rebalance and recovery longer than ``stream_processing_timeout`` it reported
        "Stream has not started processing" for each partition whose first batch was not yet
        taken (records waiting is normal then). From here the threshold runs afresh: a stream
        that really takes nothing is still reported, as "Stream stopped processing".
        """
        self.flush()  # Faust clears the per-partition series here too
        super().on_rebalance_end(app, state)
        self._tp_offset.clear()
        now = monotonic()
        for tp in app.consumer.assignment():
            self.stream_inbound_time[tp] = now

    def flush(self) -> None:
        """Write the counts kept since the last flush into Faust's Prometheus series."""
        m = self._faust_metrics
        received, self._received = self._received, 0
        m.messages_received.inc(received)
        m.active_messages.set(self._active_messages)
        events, self._events = self._events, 0
        m.total_events.inc(events)
        m.total_active_events.set(self._active_events)
        per_topic, self._per_topic = self._per_topic, {}
        for topic, n in per_topic.items():
            m.messages_received_per_topics.labels(topic=topic).inc(n)
        for tp, offset in self._tp_offset.items():
            m.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            ).set(offset)
        for entry in self._per_stream.values():
            stream, n = entry
            if n:
                label = f"stream.{_label_of(self, stream)}.events"
                m.total_events_per_stream.labels(stream=label).inc(n)
                entry[1] = 0
        batch_events, self._batch_events = self._batch_events, {}
        for label, n in batch_events.items():
            m.total_events_per_stream.labels(stream=f"stream.{label}.events").inc(n)
        self._observe_runtimes()

    def _observe_runtimes(self) -> None:
        runtimes, self._runtimes_s = self._runtimes_s, []
        observe = self._faust_metrics.events_runtime_latency.observe
        for seconds in runtimes:
            observe(self.secs_to_ms(seconds))

    def on_rebalance_start(self, app: Any) -> Any:
        """Write the pending counts before Faust clears the per-partition series."""
        self.flush()
        state = super().on_rebalance_start(app)
        self._tp_offset.clear()
        return state


def _label_of(monitor: FaustSensor, stream: Any) -> str:
    # Imported on first use: app.internals is in the app package, and importing that builds
    # the Faust app, which builds this sensor.
    from app.internals.faust_monitor import stream_label

    return stream_label(monitor, stream)
