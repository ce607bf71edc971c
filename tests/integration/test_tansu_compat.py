"""The embedded-broker workaround: tansu's ListOffsets under-reports the log end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.tansu_compat import HighWatermarkProbe, corrected_end_offsets

pytestmark = pytest.mark.integration


def test_list_offsets_under_reports_and_fetch_high_watermark_corrects_it(broker: Any) -> None:
    async def run() -> tuple[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for _ in range(5):  # several produce batches, as a changelog gets
                futures = [
                    await producer.send("compat-probe", b"v", key=b"k%d" % i, partition=0)
                    for i in range(37)
                ]
                await asyncio.gather(*futures)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            tp = TopicPartition("compat-probe", 0)
            listed = (await consumer.end_offsets([tp]))[tp]
            corrected = (await corrected_end_offsets(consumer, {tp: listed}))[tp]
            return listed, corrected
        finally:
            await consumer.stop()

    listed, corrected = asyncio.run(run())
    # If this first assertion fails, tansu fixed ListOffsets: drop app/tansu_compat.py.
    assert listed < 185
    assert corrected == 185


def test_a_long_lived_probe_corrects_again_and_again(broker: Any) -> None:
    topic = "compat-probe-reused"

    async def produce(producer: AIOKafkaProducer, n: int) -> None:
        for _ in range(n):
            futures = [await producer.send(topic, b"v", partition=0) for _ in range(37)]
            await asyncio.gather(*futures)

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        probe = HighWatermarkProbe(broker.bootstrap)
        await producer.start()
        await consumer.start()
        tp = TopicPartition(topic, 0)
        seen = []
        try:
            for batches in (5, 3):  # the same probe, after the log grew
                await produce(producer, batches)
                listed = (await consumer.end_offsets([tp]))[tp]
                seen.append((listed, (await probe.corrected({tp: listed}))[tp]))
        finally:
            await probe.close()
            await consumer.stop()
            await producer.stop()
        return seen

    (listed1, corrected1), (listed2, corrected2) = asyncio.run(run())
    assert (corrected1, corrected2) == (185, 296)
    assert listed1 <= corrected1 and listed2 <= corrected2
