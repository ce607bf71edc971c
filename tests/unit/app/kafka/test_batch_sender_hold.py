"""Held topics of the batch sender: collected over micro-batches, released at linger or flush."""

from __future__ import annotations

import asyncio
from typing import Any

from app.kafka.sender import BatchSender


class Builder:
    def __init__(self) -> None:
        self.records: list[bytes | None] = []
        self.closed = False

    def append(self, **record: Any) -> object:
        self.records.append(record["value"])
        return object()

    def close(self) -> None:
        self.closed = True


class Meta:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class Producer:
    """Records what would go to the broker, in order (no Kafka involved)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, list[bytes | None]]] = []

    def create_batch(self) -> Builder:
        return Builder()

    async def send_batch(self, builder: Builder, topic: str, partition: int) -> Any:
        assert builder.closed
        self.sent.append((topic, partition, builder.records))
        future = asyncio.get_running_loop().create_future()
        future.set_result(Meta(len(self.sent)))
        return future


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sender() -> tuple[BatchSender, Producer, Clock]:
    producer, clock = Producer(), Clock()
    out = BatchSender(producer, clock=clock)
    out.hold("forwards", 0.2)
    return out, producer, clock


def test_held_records_wait_for_the_linger_and_go_out_together() -> None:
    async def run() -> list[tuple[str, int, list[bytes | None]]]:
        out, producer, clock = sender()
        out.add("scored", 0, b"k", b"s1")
        out.add("forwards", 1, b"c", b"f1")
        await out.submit()
        assert [t for t, _, _ in producer.sent] == ["scored"]  # the forward is held
        clock.now = 0.1
        out.add("scored", 0, b"k", b"s2")
        out.add("forwards", 1, b"c", b"f2")
        await out.submit()
        assert [t for t, _, _ in producer.sent] == ["scored", "scored"]
        clock.now = 0.25  # 0.25 s after the first held record
        out.add("scored", 0, b"k", b"s3")
        await out.submit()
        return producer.sent

    sent = asyncio.run(run())
    assert sent[-1] == ("forwards", 1, [b"f1", b"f2"])  # one batch, in order
    assert [r for t, _, r in sent if t == "scored"] == [[b"s1"], [b"s2"], [b"s3"]]


def test_release_sends_held_records_at_once_and_only_once() -> None:
    async def run() -> tuple[list[Any], float | None, dict[Any, int]]:
        out, producer, _ = sender()
        out.add("forwards", 2, b"c", b"f1")
        await out.submit()
        assert producer.sent == [] and out.held_age_s() == 0.0
        delivered = await (await out.release())  # what a commit's flush does first
        await out.release()  # nothing left
        await out.submit()
        return producer.sent, out.held_age_s(), delivered

    sent, age, delivered = asyncio.run(run())
    assert sent == [("forwards", 2, [b"f1"])]
    assert age is None
    assert delivered == {("forwards", 2): 1}


def test_a_topic_held_for_zero_seconds_is_not_held() -> None:
    async def run() -> list[Any]:
        producer = Producer()
        out = BatchSender(producer, clock=Clock())
        out.hold("forwards", 0.0)
        out.add("forwards", 0, b"c", b"f1")
        await out.submit()
        return producer.sent

    assert asyncio.run(run()) == [("forwards", 0, [b"f1"])]
