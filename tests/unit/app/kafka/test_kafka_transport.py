"""The consumer thread's rewind survives a rebalance; a dead fetch loop stops the worker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from app.kafka import batch_delivery
from app.kafka import transport as kafka_transport
from app.kafka.transport import VigilConsumer, VigilConsumerThread


class Consumer:
    """An aiokafka consumer's assignment and seek_to_beginning, as aiokafka checks them."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.rewound: list[TopicPartition] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        if not tps:
            tps = tuple(self.assigned)
        elif set(tps) - self.assigned:
            raise IllegalStateError(f"Partitions {set(tps) - self.assigned} are not assigned")
        self.rewound.extend(tps)


def _thread(consumer: Consumer) -> Any:
    return SimpleNamespace(aiokafka_consumer=lambda: consumer)


async def test_partitions_taken_by_a_rebalance_are_not_sought() -> None:
    tp0, tp1, tp2 = (TopicPartition("t", p) for p in range(3))
    consumer = Consumer({tp1, tp2})  # tp0 went to the worker that just joined
    await VigilConsumerThread._rewind_assigned(_thread(consumer), [tp0, tp1])
    assert consumer.rewound == [tp1]


async def test_nothing_left_assigned_seeks_nothing() -> None:
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    consumer = Consumer({tp1})
    await VigilConsumerThread._rewind_assigned(_thread(consumer), [tp0])
    assert consumer.rewound == []  # not every assigned partition (aiokafka's empty call)


async def _failing_drain(consumer: Any, fetcher: Any, routes: Any) -> None:
    raise RuntimeError("fetch loop broke")


def _consumer(stopping: bool) -> Any:
    return SimpleNamespace(app=SimpleNamespace(batch_routes=["route"], should_stop=stopping))


async def test_a_dead_fetch_loop_stops_the_worker_instead_of_leaving_it_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stops: list[tuple[str, int]] = []

    def stop(message: str, code: int) -> None:
        stops.append((message, code))

    monkeypatch.setattr(batch_delivery, "drain", _failing_drain)
    monkeypatch.setattr(kafka_transport, "stop_process", stop)
    await VigilConsumer.drain_messages(_consumer(stopping=False), fetcher=None)
    assert len(stops) == 1
    message, code = stops[0]
    assert code == 70
    assert "fetch loop failed (RuntimeError: fetch loop broke)" in message


async def test_an_error_while_the_worker_stops_is_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stops: list[tuple[str, int]] = []
    monkeypatch.setattr(batch_delivery, "drain", _failing_drain)
    monkeypatch.setattr(kafka_transport, "stop_process", lambda m, c: stops.append((m, c)))
    await VigilConsumer.drain_messages(_consumer(stopping=True), fetcher=None)
    assert stops == []
