"""Consumer-driven micro-batches: the records of a fetch reach an agent as one batch.

Faust hands streams one message at a time. Per message, its consumer builds a ``Message``,
races the delivery against flow suspension (four futures), decodes an ``Event``, queues it,
and the stream acknowledges it: 80-100 us an event on the development machine, more than
all of Vigil's own work on a transaction. For the topics given a :class:`BatchRoute`, the
worker's drain loop (:func:`drain`, run by :class:`app.kafka.transport.VigilConsumer`)
hands the records of each fetch to the route's channel as :class:`RecordBatch` objects
instead, and the agent acknowledges a batch's offsets once its outputs are with the
producer. No linger is needed for throughput: a fetch holds whatever arrived while the
previous batch was processed, so batches grow with the load by themselves.

What stays Faust's, unchanged:

* group membership and assignment: the routed topics are still subscribed through the
  conductor, so tables stay co-partitioned with them;
* offset commits: acknowledged offsets go into the consumer's own acknowledged sets (the
  same bookkeeping as ``Consumer.ack``), so the commit and its pre-commit producer flush
  are Faust's;
* rebalances: a batch being processed counts as an unacknowledged message, so a revocation
  waits for it (``Consumer.wait_empty``); batches still queued are dropped with the channel's
  queue when the flow resumes, and are read again from the committed offset;
* every other topic: its messages take Faust's per-message path, as before.

Faust's consumer internals (its ack bookkeeping, read offsets, fetch wait) are reached
through :mod:`app.internals.faust_consumer`, the channel's queue through
:mod:`app.internals.faust_channel`. :func:`drain` is a copy of Faust's private drain loop; it
stays here beside the batch routes it feeds, and the contract test pins the original's source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    MutableMapping,
    Sequence,
)
from typing import Any

from aiokafka.errors import IllegalStateError, KafkaError
from faust.transport import consumer as faust_consumer
from faust.types import TP

from app.internals import faust_channel
from app.internals import faust_consumer as internals

log = logging.getLogger(__name__)

#: Batches a route's channel holds ahead of its agent. Two keep the agent busy while the
#: drain loop fetches; more would only delay the back-pressure that stops fetching.
QUEUED_BATCHES = 2
#: How often a lingering batch looks for more records.
LINGER_POLL_S = 0.001


class RecordBatch:
    """Consumed records of one route, handed to its agent together.

    ``records`` are the client's own records (``topic``, ``partition``, ``offset``, ``key``,
    ``value``, ``timestamp``, ``headers``), in fetch order within each partition.
    """

    __slots__ = (
        "__weakref__",
        "acked",
        "epoch",
        "generation_id",
        "offsets",
        "records",
        "refcount",
    )

    def __init__(
        self, records: list[Any], offsets: dict[TP, list[int]], generation_id: int = 0
    ) -> None:
        self.records = records
        #: Offsets per partition, acknowledged together by :meth:`BatchRoute.ack`.
        self.offsets = offsets
        #: The consumer group generation the records were fetched in.
        self.generation_id = generation_id
        #: The route's queue epoch when the drain loop began to queue it (see
        #: :meth:`BatchRoute.deliver`).
        self.epoch = 0
        self.acked = False
        self.refcount = 1  # read by Faust's wait_empty when it logs what it waits for

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        spans = {f"{tp.topic}/{tp.partition}": (o[0], o[-1]) for tp, o in self.offsets.items()}
        return f"<RecordBatch {len(self.records)} records {spans}>"

    @classmethod
    def merge(cls, batches: Sequence[RecordBatch]) -> RecordBatch:
        """Return one batch holding ``batches`` in order."""
        if len(batches) == 1:
            return batches[0]
        records: list[Any] = []
        offsets: dict[TP, list[int]] = {}
        for batch in batches:
            records.extend(batch.records)
            for tp, tp_offsets in batch.offsets.items():
                offsets.setdefault(tp, []).extend(tp_offsets)
        merged = cls(records, offsets, batches[-1].generation_id)
        merged.epoch = min(batch.epoch for batch in batches)
        return merged


def split_batches(
    parts: Iterable[tuple[TP, Sequence[Any]]], max_records: int, generation_id: int = 0
) -> Iterator[RecordBatch]:
    """Cut the records of several partitions into batches of at most ``max_records``."""
    records: list[Any] = []
    offsets: dict[TP, list[int]] = {}
    for tp, tp_records in parts:
        for record in tp_records:
            records.append(record)
            tp_offsets = offsets.get(tp)
            if tp_offsets is None:
                tp_offsets = offsets[tp] = []
            tp_offsets.append(record.offset)
            if len(records) >= max_records:
                yield RecordBatch(records, offsets, generation_id)
                records, offsets = [], {}
    if records:
        yield RecordBatch(records, offsets, generation_id)


class BatchRoute:
    """Topics whose records reach one agent a fetch at a time, through an in-memory channel.

    The agent iterates :attr:`channel` through :meth:`serve` (which checks :meth:`current`,
    calls :meth:`begin`, processes the records, then :meth:`ack`). Run it with concurrency 1:
    batches go to one subscriber, in order, so an account's transactions are never processed
    out of order.
    """

    def __init__(self, app: Any, name: str, topics: Sequence[Any], max_records: int) -> None:
        self.app = app
        #: The agent's name: the ``stream`` label of its events in Faust's metrics.
        self.name = name
        self.topics = list(topics)
        self.names = frozenset(name for topic in self.topics for name in topic.topics)
        self.max_records = max_records
        self.channel: Any = app.channel(maxsize=QUEUED_BATCHES)
        self._subscriptions: list[Any] = []
        #: Set when Faust cleared the channel's queue (at every flow resume): the batches in
        #: it were dropped unprocessed, and the drain loop must read them again.
        self.cleared = False
        #: How many clears the queue has seen. A batch carries the epoch it was queued in;
        #: one queued before a clear is stale even if it lands in the queue after it.
        self.epoch = 0
        self._watched: Any = None

    def subscribe(self) -> None:
        """Subscribe the topics through Faust's conductor (the agent calls this at start)."""
        if not self._subscriptions:
            # Iterating a topic is how Faust registers it with the conductor; the iterator
            # itself is never read, because the drain loop hands these records over here.
            self._subscriptions = [topic.__aiter__() for topic in self.topics]

    def _queue(self) -> Any | None:
        queue = faust_channel.subscriber_queue(self.channel)
        if queue is not None and queue is not self._watched:
            self._watch(queue)
        return queue

    def _watch(self, queue: Any) -> None:
        """Note every clear of ``queue`` (mode's FlowControlEvent clears it on resume)."""
        self._watched = queue
        clear = getattr(queue, "clear", None)
        if clear is None:  # a plain asyncio.Queue is never cleared
            return

        def cleared() -> None:
            self.cleared = True
            self.epoch += 1
            log.debug("queue cleared, dropping %s", list(faust_channel.queued_items(queue)))
            clear()

        queue.clear = cleared

    def take_cleared(self) -> bool:
        """Tell (once) whether the queue was cleared since the last call."""
        cleared, self.cleared = self.cleared, False
        return cleared

    async def deliver(self, consumer: Any, batch: RecordBatch) -> bool:
        """Queue ``batch`` for the agent; False if the flow was suspended first.

        The batch takes the queue's epoch now, before any wait: a put that waits for room
        can be woken by the agent taking a batch and complete after a clear in the same
        turn of the event loop, landing the batch behind the dropped ones. Its old epoch
        makes the agent drop it too (:meth:`current`), so batches are applied in order.
        """
        batch.epoch = self.epoch
        queue = self._queue()
        while queue is None:  # the agent has not started iterating yet
            if not consumer.flow_active or consumer.should_stop:
                return False
            await asyncio.sleep(0.01)
            queue = self._queue()
        if not queue.full():
            queue.put_nowait(batch)
            return True
        put = asyncio.ensure_future(queue.put(batch))
        try:
            result = await consumer.wait_first(put, consumer.suspend_flow.wait())
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if put.cancelled() and task is not None and not task.cancelling():
                # Faust clears the channel's queue when the flow resumes after a rebalance
                # (mode's ThrowableQueue.clear cancels waiting putters): the batch was
                # dropped, not this loop. Letting the CancelledError out ended the drain
                # loop, and Faust restarts its fetcher only while still rebalancing, so
                # a worker that resumed with a full queue (a backlog after a restart or a
                # rebalance) said "Ready" and never fetched again. The drain loop reads the
                # cleared batches again (:meth:`take_cleared`).
                return False
            raise
        return bool(result.done) and not result.stopped and consumer.flow_active

    async def more(self, batch: RecordBatch, linger_s: float = 0.0) -> RecordBatch:
        """Return ``batch`` merged with the batches queued behind it that fit the size limit.

        With ``linger_s``, a batch still short of the limit waits that long for more. A fetch
        at a time is usually enough; lingering only trades latency for fewer batches.
        """
        queue = self._queue()
        if queue is None:
            return batch
        waiting = faust_channel.queued_items(queue)  # look at the next batch, keep it queued
        batches = [batch]
        size = len(batch)
        deadline = asyncio.get_running_loop().time() + linger_s
        while size < self.max_records:
            if batch.epoch != self.epoch:
                break  # cleared while lingering: this batch is dropped (see current())
            if waiting:
                nxt = waiting[0]
                older = (nxt.generation_id, nxt.epoch) < (batch.generation_id, batch.epoch)
                if older:  # queued before a rebalance or a clear: dropped, read again
                    queue.get_nowait()
                    continue
                if nxt.generation_id != batch.generation_id or nxt.epoch != batch.epoch:
                    break  # this batch is the stale one: never merge records across a clear
                if size + len(nxt) > self.max_records:
                    break
                queue.get_nowait()
                batches.append(nxt)
                size += len(nxt)
            elif linger_s > 0 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(LINGER_POLL_S)
            else:
                break
        return RecordBatch.merge(batches)

    async def serve(
        self,
        batches: AsyncIterator[RecordBatch],
        process: Callable[[list[Any]], Awaitable[None]],
        linger_s: float,
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Run an agent's loop: ``process`` the records of each current batch, then ack it.

        ``on_error`` gets any exception of ``process`` and must not return normally (the
        workers pass :func:`agents.pipeline.exit_now`): a batch whose outputs may be
        incomplete is never acknowledged.
        """
        async for first in batches:
            if not self.current(first):
                continue  # fetched before a rebalance or a clear: read again from the commit
            batch = await self.more(first, linger_s)
            if not self.current(batch):
                continue  # a clear or a rebalance while it lingered: read again as well
            self.begin(batch)
            try:
                await process(batch.records)
            except Exception as exc:
                on_error(exc)
                raise
            self.ack(batch)

    def current(self, batch: RecordBatch) -> bool:
        """Tell whether ``batch`` may be processed: fetched in this generation, flow running.

        A batch fetched before a rebalance (or taken while one suspends the flow) may hold
        partitions this worker no longer owns; it is left unacknowledged and dropped, and the
        new owner reads it again from the committed offset.
        """
        consumer = self.app.consumer
        return (
            bool(consumer.flow_active)
            and batch.generation_id == self.app.consumer_generation_id
            and batch.epoch == self.epoch
        )

    def begin(self, batch: RecordBatch) -> None:
        """Mark ``batch`` as in process: a rebalance now waits for its :meth:`ack`."""
        consumer = self.app.consumer
        internals.add_unacked(consumer, batch)
        count_in = getattr(self.app.monitor, "count_batch_in", None)
        if count_in is not None:
            for tp, offsets in batch.offsets.items():
                count_in(tp, offsets[-1], len(offsets), self.name)

    def ack(self, batch: RecordBatch) -> int:
        """Acknowledge every offset of ``batch`` (as ``Consumer.ack`` does one message's).

        Returns how many offsets were newly acknowledged.
        """
        consumer = self.app.consumer
        acks_enabled_for = self.app.topics.acks_enabled_for
        with internals.ack_lock():
            if batch.acked:
                return 0
            batch.acked = True
            batch.refcount = 0
            try:
                n = internals.record_acks(consumer, batch.offsets, acks_enabled_for)
                internals.discard_unacked(consumer, batch)
            finally:
                internals.wake_ack_waiters(consumer)
        count_out = getattr(self.app.monitor, "count_batch_out", None)
        if count_out is not None:
            count_out(len(batch))
        return n


class BatchRoutes:
    """The app's routes by topic name (looked up by the drain loop for every fetch)."""

    def __init__(self) -> None:
        self._by_topic: dict[str, BatchRoute] = {}

    def add(self, route: BatchRoute) -> BatchRoute:
        """Register ``route``; a topic may belong to one route only."""
        taken = route.names & self._by_topic.keys()
        if taken:
            raise ValueError(f"topics already routed to a batch agent: {sorted(taken)}")
        for name in route.names:
            self._by_topic[name] = route
        return route

    def get(self, topic: str) -> BatchRoute | None:
        """Return the route of ``topic``, if it has one."""
        return self._by_topic.get(topic)

    def __bool__(self) -> bool:
        return bool(self._by_topic)

    def take_cleared(self) -> bool:
        """Tell whether any route's queue was cleared since the last call."""
        return any([route.take_cleared() for route in set(self._by_topic.values())])


class RereadCleared:
    """Seek to the committed offsets after a route's queue was cleared; tell whether it was.

    Batches dropped by a queue clear (the flow resumed) were read already: the fetch position
    and read offsets are past them. Seeking back to the committed offsets, as Faust does
    before it resumes the flow, makes them come again (replays are idempotent). A seek that
    began before a rebalance can end after it, on a partition no longer assigned (aiokafka's
    ``IllegalStateError``, seen on Apache Kafka when a worker joins): it is done again on
    the new assignment at the next call instead of ending the drain loop.
    """

    def __init__(self, consumer: Any, routes: BatchRoutes) -> None:
        self.consumer = consumer
        self.routes = routes
        self.again = False

    async def __call__(self) -> bool:
        """Seek if a queue was cleared (or the last seek was overtaken); tell whether."""
        if not (self.routes.take_cleared() or self.again):
            return False
        try:
            await self.consumer.perform_seek()
            self.again = False
        except IllegalStateError as exc:
            log.info("seek to committed offsets overtaken by a rebalance; again: %s", exc)
            self.again = True
        except KafkaError as exc:
            # A coordinator moving or busy (the committed-offset lookup fails): the dropped
            # records must still come again, so seek at the next call rather than end the
            # drain loop (which would stop the worker).
            log.warning("seek to committed offsets failed, trying again: %r", exc)
            self.again = True
        return True


async def deliver_in_order(
    route: BatchRoute,
    consumer: Any,
    batches: Iterable[RecordBatch],
    before_each: Callable[[], Awaitable[None]],
    reread_cleared: Callable[[], Awaitable[bool]],
    read_offset: MutableMapping[TP, int | None],
) -> bool:
    """Queue one fetch's batches for ``route``'s agent in offset order; False once one is not.

    Faust clears the channel's queue whenever the flow resumes (a recovery ending, for one),
    dropping the batches in it. Once a batch of this fetch was dropped, no later one may be
    queued: the agent would apply it first, the accounts' input-offset marks
    (models.redelivery) would move past the dropped records, and when those were read again
    they would be taken for redeliveries, scored but never counted. So a clear is looked for
    right before each batch is queued, with no await between that check and the put (the
    commit in ``before_each`` is where the event loop ran the recovery that cleared it), and
    again after a put that had to wait.
    """
    for batch in batches:
        await before_each()
        if await reread_cleared():
            return False
        before = {tp: read_offset[tp] for tp in batch.offsets}
        delivered = await route.deliver(consumer, batch)
        if await reread_cleared() or not delivered:
            return False
        for tp, offsets in batch.offsets.items():
            if read_offset[tp] == before[tp]:  # else a seek moved it while we waited
                read_offset[tp] = offsets[-1]
    return True


async def drain(consumer: Any, fetcher: Any, routes: BatchRoutes) -> None:
    """Faust's ``Consumer._drain_messages`` with routed topics delivered a batch at a time.

    Messages of other topics take Faust's per-message path as in Faust. One difference for
    both: a partition's read offset advances only when its records were delivered, not when
    the delivery was given up because the flow was suspended (a seek follows either way).
    """
    callback = consumer.callback
    consumer_should_stop = internals.stop_check(consumer)
    fetcher_should_stop = internals.stop_check(fetcher)
    read_offset = internals.read_offsets(consumer)
    set_flag = consumer.diag.set_flag
    unset_flag = consumer.diag.unset_flag
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    commit_every = internals.commit_every(consumer)
    app = consumer.app

    async def maybe_commit() -> None:
        if internals.take_commit_due(consumer, commit_every):
            await consumer.commit()

    async def note_gap(tp: TP, last: int | None, offset: int) -> None:
        # Offsets the broker skipped (compaction, transaction markers) still let commits
        # move past them, as in Faust.
        if last and offset - last > 1 and acks_enabled_for(tp.topic):
            await internals.add_gap(consumer, tp, last + 1, offset)

    async def deliver_routed(route: BatchRoute, parts: list[tuple[TP, list[Any]]]) -> bool:
        fresh: list[tuple[TP, list[Any]]] = []
        for tp, records in parts:
            last = read_offset[tp]
            kept = []
            for record in records:
                offset = record.offset
                if last is not None and offset < last:
                    continue  # already read before a seek; Faust drops these too
                await note_gap(tp, last, offset)
                kept.append(record)
                last = offset
            if kept:
                fresh.append((tp, kept))
        batches = split_batches(fresh, route.max_records, app.consumer_generation_id)
        return await deliver_in_order(
            route, consumer, batches, maybe_commit, reread_cleared, read_offset
        )

    def current(generation_id: int) -> bool:
        return bool(consumer.flow_active) and app.consumer_generation_id == generation_id

    reread_cleared = RereadCleared(consumer, routes)

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(faust_consumer.CONSUMER_FETCHING)
            records, active = await internals.wait_next_records(consumer, 1.0)
            await consumer.sleep(0)
            if records is None or consumer.should_stop:
                continue
            if not consumer.flow_active:
                try:
                    await consumer.perform_seek()
                except Exception as exc:
                    log.warning("exception performing seek when flow not active: %r", exc)
                continue
            if await reread_cleared() or not records:
                continue
            generation_id = app.consumer_generation_id
            routed: dict[BatchRoute, list[tuple[TP, list[Any]]]] = {}
            others: dict[TP, list[Any]] = {}
            buffered = internals.buffered_partitions(consumer)
            for tp, tp_records in records.items():
                if active is not None and tp not in active and tp not in buffered:
                    continue
                app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
                route = routes.get(tp.topic)
                if route is None:
                    others[tp] = tp_records
                else:
                    routed.setdefault(route, []).append((tp, tp_records))

            for route, parts in routed.items():
                if not current(generation_id) or not await deliver_routed(route, parts):
                    break
            for n, (tp, record) in enumerate(consumer.scheduler.iterate(others), 1):
                if not current(generation_id):
                    break
                if n % 100 == 0:
                    await asyncio.sleep(0)
                offset = record.offset
                last = read_offset[tp]
                if last is None or offset >= last:
                    await note_gap(tp, last, offset)
                    await maybe_commit()
                    delivery = callback(internals.to_message(consumer, tp, record))
                    result = await consumer.wait_first(delivery, consumer.suspend_flow.wait())
                    if result.stopped or delivery not in result.done:
                        break  # stopping, or the flow was suspended before delivery
                    read_offset[tp] = offset
            unset_flag(faust_consumer.CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(faust_consumer.CONSUMER_FETCHING)
