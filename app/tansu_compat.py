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


async def fetch_high_watermarks(client_consumer: Any, tps: list[Any]) -> dict[Any, int]:
    """Return each partition's high watermark as reported by a real Fetch response."""
    import aiokafka

    bootstrap = client_consumer._client._bootstrap_servers
    probe = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=1,
    )
    try:
        await probe.start()
        ktps = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps]
        probe.assign(ktps)
        await probe.seek_to_beginning(*ktps)
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
    finally:
        # Shielded: a worker shutting down cancels its callers, and a half-stopped probe
        # would leak its connections ("Unclosed AIOKafkaConsumer").
        await asyncio.shield(probe.stop())


async def corrected_end_offsets(client_consumer: Any, offsets: Mapping[Any, int]) -> dict[Any, int]:
    """Return ``offsets`` raised to the fetch high watermark where tansu under-reports."""
    tps = list(offsets)
    if not tps:
        return dict(offsets)
    marks = await fetch_high_watermarks(client_consumer, tps)
    corrected = dict(offsets)
    for tp, hw in marks.items():
        end = offsets[tp]
        if end is None or hw > end:
            log.debug("tansu end offset corrected", extra={"tp": str(tp), "listed": end, "hw": hw})
            corrected[tp] = hw
    return corrected
