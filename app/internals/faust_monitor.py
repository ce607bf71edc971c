"""Faust's Prometheus sensor internals: the stream label and when partition series are cleared.

:class:`monitoring.faust_sensor.FaustSensor` writes per-message counts into Faust's own
series at scrape time: it labels a stream's events as Faust does, and writes its pending
counts before Faust clears the per-partition series at a rebalance's start and end.
"""

from __future__ import annotations

from typing import Any

from app.internals.registry import Internal

MONITOR = "faust.sensors.prometheus:PrometheusMonitor"

INTERNALS: tuple[Internal, ...] = (
    Internal(
        "faust-streaming",
        MONITOR,
        "_stream_label",
        "method",
        "the stream label of Faust's own per-stream series",
        __name__,
        params=("self", "stream"),
    ),
    Internal(
        "faust-streaming",
        MONITOR,
        "_clear_partition_related_metrics",
        "method",
        "FaustSensor flushes in on_rebalance_start/end, before Faust clears through this",
        __name__,
        params=("self",),
        called_from=("on_rebalance_start", "on_rebalance_end"),
    ),
)


def stream_label(monitor: Any, stream: Any) -> str:
    """Return the label Faust's ``PrometheusMonitor`` gives ``stream`` in its series."""
    return str(monitor._stream_label(stream))
