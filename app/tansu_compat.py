"""Workarounds for the embedded tansu 0.6.0 broker, and only for it.

Everything here runs only when ``VIGIL_BROKER_FLAVOR=tansu`` (set by the demo and the test
fixtures). Apache Kafka deployments never take these paths.

Quirks handled:

* ListOffsets LATEST under-reports the log end while the Fetch high watermark is right, so
  Faust table recovery stops early (stale state) or raises ConsistencyError. The end offsets
  Faust asks for are corrected with the high watermark of a real fetch.

Quirks avoided by configuration rather than code (see README):

* a group join is held for half the session timeout: short session timeout by default;
* InitProducerId v0 is refused: no idempotent producer, no ``exactly_once``;
* a Fetch with ``max_wait`` 0 comes back empty: ``VIGIL_FETCH_MAX_WAIT_MS`` >= 1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def _new_probe(bootstrap: Any) -> Any:
    import aiokafka

    return aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=1,
    )


async def _poll_marks(probe: Any, tps: list[Any], ktps: list[Any]) -> dict[Any, int]:
    marks: dict[Any, int] = {}
    for _ in range(20):
        await probe.getmany(*ktps, timeout_ms=100)
        for tp, ktp in zip(tps, ktps, strict=True):
            hw = probe.highwater(ktp)
            if hw is not None:
                marks[tp] = int(hw)
        if len(marks) == len(tps):
            break
    return marks


async def fetch_high_watermarks(client_consumer: Any, tps: list[Any]) -> dict[Any, int]:
    """Return each partition's high watermark as reported by a real Fetch response."""
    import aiokafka

    probe = _new_probe(client_consumer._client._bootstrap_servers)
    try:
        await probe.start()
        ktps = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps]
        probe.assign(ktps)
        await probe.seek_to_beginning(*ktps)
        return await _poll_marks(probe, tps, ktps)
    finally:
        # Shielded: a worker shutting down cancels its callers, and a half-stopped probe
        # would leak its connections ("Unclosed AIOKafkaConsumer").
        await asyncio.shield(probe.stop())


def _raise_to(offsets: Mapping[Any, int], marks: Mapping[Any, int]) -> dict[Any, int]:
    corrected = dict(offsets)
    for tp, hw in marks.items():
        end = offsets[tp]
        if end is None or hw > end:
            log.debug("tansu end offset corrected", extra={"tp": str(tp), "listed": end, "hw": hw})
            corrected[tp] = hw
    return corrected


async def corrected_end_offsets(client_consumer: Any, offsets: Mapping[Any, int]) -> dict[Any, int]:
    """Return ``offsets`` raised to the fetch high watermark where tansu under-reports."""
    tps = list(offsets)
    if not tps:
        return dict(offsets)
    return _raise_to(offsets, await fetch_high_watermarks(client_consumer, tps))


class HighWatermarkProbe:
    """:func:`corrected_end_offsets` for callers that ask every few seconds.

    A probe consumer per call (bootstrap, metadata of every topic, new connections) is fine
    for a table recovery, but the web view samples the scored topic's end every 5 s, and
    starting a consumer each time paused the worker's event loop in the middle of scoring.
    This keeps one probe, and fetches from just below the listed end.
    """

    def __init__(self, bootstrap: Any) -> None:
        self._bootstrap = bootstrap
        self._probe: Any = None

    async def corrected(self, offsets: Mapping[Any, int]) -> dict[Any, int]:
        """Return ``offsets`` raised to the fetch high watermark where tansu under-reports."""
        import aiokafka

        tps = list(offsets)
        if not tps:
            return dict(offsets)
        if self._probe is None:
            probe = _new_probe(self._bootstrap)
            await probe.start()
            self._probe = probe
        probe = self._probe
        ktps = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps]
        if set(ktps) != probe.assignment():
            probe.assign(ktps)
        probe.resume(*ktps)
        for tp, ktp in zip(tps, ktps, strict=True):
            probe.seek(ktp, max(0, (offsets[tp] or 0) - 1))
        try:
            return _raise_to(offsets, await _poll_marks(probe, tps, ktps))
        finally:
            # Between calls the probe must not fetch: an assigned consumer prefetches for
            # ever, here a record at a time through the whole topic.
            probe.pause(*ktps)

    async def close(self) -> None:
        """Stop the probe consumer (shielded, as in :func:`fetch_high_watermarks`)."""
        probe, self._probe = self._probe, None
        if probe is not None:
            await asyncio.shield(probe.stop())
