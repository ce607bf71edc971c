"""Small synchronous helpers to produce to and read from the embedded broker in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Send ``(key, value)`` records in order and wait until all are acknowledged."""

    async def run() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*futures)
            return len(futures)
        finally:
            await producer.stop()

    return asyncio.run(run())


def consume(
    bootstrap: str,
    topic: str | Sequence[str],
    until: Callable[[list[Any]], bool],
    timeout_s: float = 60.0,
) -> list[Any]:
    """Read ``topic`` (or several) from the start until ``until(records)`` holds or time is up.

    One consumer reads every partition, so nothing read is lost between checks.
    """
    topics = [topic] if isinstance(topic, str) else list(topic)

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        records: list[Any] = []
        try:
            deadline = time.monotonic() + timeout_s
            tps: list[TopicPartition] = []
            for name in topics:
                while time.monotonic() < deadline:
                    parts = consumer.partitions_for_topic(name)
                    if parts:
                        break
                    await consumer._client.force_metadata_update()
                    await asyncio.sleep(0.2)
                tps += [TopicPartition(name, p) for p in sorted(parts or [])]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while time.monotonic() < deadline and not until(records):
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    records.extend(msgs)
            return records
        finally:
            await consumer.stop()

    return asyncio.run(run())


def consume_for(bootstrap: str, topic: str, seconds: float) -> list[Any]:
    """Read everything ``topic`` holds, waiting ``seconds`` for stragglers."""
    return consume(bootstrap, topic, lambda _: False, timeout_s=seconds)
