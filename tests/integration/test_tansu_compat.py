"""The embedded-broker workaround: tansu's ListOffsets under-reports the log end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.tansu_compat import corrected_end_offsets

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
