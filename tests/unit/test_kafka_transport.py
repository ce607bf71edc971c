"""The consumer thread's rewind of never-committed partitions survives a rebalance."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from app.kafka_transport import VigilConsumerThread


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
