"""The account pipeline without a broker: an in-memory store, a collecting sender, a model.

Pure-code tests of :class:`agents.pipeline.TransactionPipeline` drive ``process`` with plain
messages and look at what it handed to the sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agents.pipeline import TransactionPipeline
from app.serving import ModelSet, ServedModel
from app.settings import Settings
from models.artifact import load_artifact
from models.partitioning import murmur2_partition
from monitoring.metrics import VigilMetrics

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Message:
    """A consumed record as the pipeline reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class MemoryStore:
    """AccountStore's methods on dicts (one per partition)."""

    changelog_topic = "accounts-changelog"

    def __init__(self) -> None:
        self.data: dict[tuple[int, bytes], bytes] = {}
        self.offsets: dict[int, int] = {}

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get((partition, key))

    def put_many(self, partition: int, items: Iterable[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            self.data[(partition, key)] = value

    def set_changelog_offset(self, partition: int, offset: int) -> None:
        self.offsets[partition] = offset

    def estimate_keys(self) -> int:
        return len(self.data)


@dataclass(slots=True)
class Sent:
    """One record handed to the sender."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)


class CollectingSender:
    """BatchSender's methods, keeping every record; acknowledges at once."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.sent: list[Sent] = []
        self._next_offset: dict[tuple[str, int], int] = {}
        self._pending: list[Sent] = []

    def partition_for(self, topic: str, key: bytes) -> int:
        return murmur2_partition(key, self.partitions)

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        assert isinstance(key, bytes | None) and isinstance(value, bytes | None)
        self._pending.append(Sent(topic, partition, key, value, list(headers or [])))

    async def submit(self) -> asyncio.Future[dict[tuple[str, int], int]]:
        last: dict[tuple[str, int], int] = {}
        for record in self._pending:
            tp = (record.topic, record.partition)
            last[tp] = self._next_offset.get(tp, -1) + 1
            self._next_offset[tp] = last[tp]
        self.sent.extend(self._pending)
        self._pending = []
        future: asyncio.Future[dict[tuple[str, int], int]] = (
            asyncio.get_running_loop().create_future()
        )
        future.set_result(last)
        return future

    def to(self, topic: str) -> list[Sent]:
        """Return what was sent to ``topic``."""
        return [r for r in self.sent if r.topic == topic]


@dataclass(frozen=True, slots=True)
class FixedModels:
    """A ModelSource that never swaps."""

    current: ModelSet


def make_pipeline(
    model_path: Path, settings: Settings | None = None
) -> tuple[TransactionPipeline, MemoryStore, CollectingSender]:
    """Return a pipeline on the trained model at ``model_path`` and its two edges."""
    s = settings or Settings()
    store, sender = MemoryStore(), CollectingSender(s.partitions)
    models = FixedModels(ModelSet(ServedModel(load_artifact(model_path), {})))
    pipeline = TransactionPipeline(
        s,
        models,
        store,  # type: ignore[arg-type]
        sender,  # type: ignore[arg-type]
        VigilMetrics(),
        clock=lambda: 1_772_442_000.0,  # 2026-03-02T09:00:00Z
    )
    return pipeline, store, sender
