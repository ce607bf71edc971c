"""The embedded-broker workaround: tansu's ListOffsets under-reports the log end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.kafka.tansu_compat import HighWatermarkProbe, corrected_end_offsets

#: Workarounds of tansu's quirks, checked on tansu: Apache Kafka has neither quirk (its side is
#: test_broker_flavor.py: none of these is installed there).
pytestmark = [pytest.mark.integration, pytest.mark.brokers("tansu")]


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
    # If this first assertion fails, tansu fixed ListOffsets: drop app/kafka/tansu_compat.py.
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


def test_quiet_partitions_are_fetched_less_often_and_their_records_still_arrive(
    broker: Any,
) -> None:
    """The worker's fetch workaround on a real consumer: idle topics drop out of most fetches."""
    from app.kafka.tansu_compat import fetch_quiet_partitions_less_often

    hot, idle = "compat-quiet-hot", "compat-quiet-idle"

    async def run() -> tuple[int, int, bytes | None]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        await (await producer.send(hot, b"h", partition=0))
        await (await producer.send(idle, b"i0", partition=0))
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=10)
        await consumer.start()
        quiet = fetch_quiet_partitions_less_often(consumer, [hot])
        plans: list[list[Any]] = []
        select = quiet.select

        def recorded(tps: Any, position: Any) -> list[Any]:
            chosen = select(tps, position)
            plans.append(chosen)
            return chosen

        quiet.select = recorded  # type: ignore[method-assign]
        tps = [TopicPartition(hot, 0), TopicPartition(idle, 0)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        try:
            await consumer.getmany(timeout_ms=500)  # both first records
            await asyncio.sleep(1.2)  # idle long enough to be quiet
            plans.clear()
            await asyncio.sleep(1.0)  # the fetcher keeps fetching the hot partition
            with_idle = sum(tps[1] in plan for plan in plans)
            await (await producer.send(idle, b"i1", partition=0))
            got = None
            for _ in range(20):
                batch = await consumer.getmany(tps[1], timeout_ms=100)
                if batch.get(tps[1]):
                    got = batch[tps[1]][-1].value
                    break
            return len(plans), with_idle, got
        finally:
            await consumer.stop()
            await producer.stop()

    plans, with_idle, got = asyncio.run(run())
    assert plans >= 40  # the hot partition kept the fetcher busy (10 ms fetches)
    assert 1 <= with_idle <= plans / 4  # the quiet one was in few of them, not none
    assert got == b"i1"
