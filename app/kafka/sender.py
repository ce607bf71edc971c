"""Batched producing: one aiokafka producer batch per topic partition per micro-batch.

``producer.send()`` creates a future and a metadata lookup per message; appending to a
``BatchBuilder`` is several times cheaper, which matters at thousands of records a second.

Records of a *held* topic (:meth:`BatchSender.hold`) are collected over several
micro-batches and sent once they are ``linger_s`` old, or when :meth:`BatchSender.release`
is called; the worker calls it before every offset commit (see
:class:`app.kafka.transport.VigilProducer`), so committed input never has held records
that were not delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from app.internals import aiokafka_client
from models.partitioning import murmur2_partition

Headers = list[tuple[str, bytes]]
Pending = list[tuple[str, int, Any, int]]  # (topic, partition, builder, records in it)


class _Lane:
    """Producer batches being filled, per (topic, partition), and those already full."""

    __slots__ = ("full", "open")

    def __init__(self) -> None:
        self.open: dict[tuple[str, int], list[Any]] = {}  # tp -> [builder, records in it]
        self.full: Pending = []

    def take(self) -> Pending:
        """Return every batch of the lane (full ones first) and empty it."""
        taken = self.full + [(t, p, b, n) for (t, p), (b, n) in self.open.items()]
        self.open, self.full = {}, []
        return taken


class BatchSender:
    """Collect records per (topic, partition) and send them as producer batches."""

    def __init__(
        self,
        producer: Any,
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self._clock = clock
        #: Called from the first done-callback of a failed batch, i.e. before anything else
        #: waiting on that batch (such as Faust's pre-commit flush) resumes.
        self._on_error = on_error
        self._lane = _Lane()  # sent by the next submit
        self._held = _Lane()  # records of held topics
        self._held_topics: set[str] = set()
        #: How long held records may wait (the shortest linger of the held topics).
        self._linger_s = float("inf")
        self._held_since: float | None = None
        #: Partition counts of the prepared topics (checked at start; read per key).
        self._counts: dict[str, int] = {}

    async def prepare(self, topics: Sequence[str]) -> None:
        """Load metadata of the topics so partitions can be computed synchronously."""
        client = self._producer.client
        for topic in topics:
            await aiokafka_client.wait_on_metadata(client, topic)
            self._counts[topic] = self._listed_count(topic)
            # Track it from now on: a topic the client only knows from its bootstrap (all
            # topics) metadata drops out of the cluster view at the next refresh, which asks
            # for the tracked topics only.
            await client.add_topic(topic)

    def partition_count(self, topic: str) -> int:
        """Return the partition count of a topic, as prepared (else as listed now)."""
        count = self._counts.get(topic)
        return self._listed_count(topic) if count is None else count

    def _listed_count(self, topic: str) -> int:
        return len(self._producer.client.cluster.partitions_for_topic(topic) or ())

    def partition_for(self, topic: str, key: bytes) -> int:
        """Return the partition the producer's default (murmur2) partitioner picks."""
        count = self._counts.get(topic)
        if count is None:
            count = self._counts[topic] = self._listed_count(topic)
        return murmur2_partition(key, count)

    def hold(self, topic: str, linger_s: float) -> None:
        """Collect the records of ``topic`` for up to ``linger_s`` before sending them."""
        if linger_s > 0:
            self._held_topics.add(topic)
            self._linger_s = min(self._linger_s, linger_s)

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record for the next :meth:`submit` (or :meth:`release`, if held)."""
        headers = headers or []
        tp = (topic, partition)
        lane = self._lane
        if topic in self._held_topics:
            lane = self._held
            if self._held_since is None:
                self._held_since = self._clock()
        slot = lane.open.get(tp)
        if slot is None:
            slot = lane.open[tp] = [self._producer.create_batch(), 0]
        if slot[0].append(timestamp=timestamp_ms, key=key, value=value, headers=headers) is None:
            lane.full.append((topic, partition, slot[0], slot[1]))
            slot = lane.open[tp] = [self._producer.create_batch(), 0]
            if (
                slot[0].append(timestamp=timestamp_ms, key=key, value=value, headers=headers)
                is None
            ):
                raise ValueError(f"record for {topic} does not fit an empty producer batch")
        slot[1] += 1

    async def submit(self) -> asyncio.Future[dict[tuple[str, int], int]]:
        """Hand everything queued to the producer without waiting for the broker.

        Returns a future of the last offset written per (topic, partition), done when the
        broker has acknowledged every batch (or failed with the first error).
        """
        pending = self._lane.take()
        if self._held_due():
            pending.extend(self._take_held())
        return await self._send(pending)

    async def release(self) -> asyncio.Future[dict[tuple[str, int], int]]:
        """Hand every held record to the producer now (before a commit)."""
        return await self._send(self._take_held())

    async def release_due(self) -> None:
        """Hand the held records over if they have waited their linger (a timer's call)."""
        if self._held_due():
            await self.release()

    def held_age_s(self) -> float | None:
        """Return how long the oldest held record has waited (None when nothing is held)."""
        return None if self._held_since is None else self._clock() - self._held_since

    def _held_due(self) -> bool:
        age = self.held_age_s()
        return age is not None and age >= self._linger_s

    def _take_held(self) -> Pending:
        self._held_since = None
        return self._held.take()

    async def _send(self, pending: Pending) -> asyncio.Future[dict[tuple[str, int], int]]:
        sent: list[tuple[str, int, int, asyncio.Future[Any]]] = []
        for topic, partition, builder, count in pending:
            builder.close()  # nothing else may add to it, so offsets below are exact
            future = await self._producer.send_batch(builder, topic, partition=partition)
            if self._on_error is not None:
                future.add_done_callback(self._check)
            sent.append((topic, partition, count, future))
        return asyncio.ensure_future(_last_offsets(sent))

    def _check(self, future: asyncio.Future[Any]) -> None:
        if self._on_error is not None and (future.cancelled() or future.exception()):
            self._on_error(future.exception() or asyncio.CancelledError())


async def _last_offsets(
    sent: list[tuple[str, int, int, asyncio.Future[Any]]],
) -> dict[tuple[str, int], int]:
    results = await asyncio.gather(*(future for *_, future in sent))
    last: dict[tuple[str, int], int] = {}
    for (topic, partition, count, _), meta in zip(sent, results, strict=True):
        tp = (topic, partition)
        last[tp] = max(last.get(tp, -1), meta.offset + count - 1)
    return last
