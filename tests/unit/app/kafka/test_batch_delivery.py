"""Consumer-driven batches: cutting fetches into batches and acknowledging their offsets.

The bookkeeping must match Faust's ``Consumer.ack`` message by message, because Faust's
commit reads it; the worker on a real broker is covered by the integration tests.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import IllegalStateError, NotCoordinatorForGroupError
from faust.types import TP
from mode import Service
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from app.kafka.batch_delivery import (
    BatchRoute,
    BatchRoutes,
    RecordBatch,
    RereadCleared,
    deliver_in_order,
    split_batches,
)

A0 = TP("tx", 0)
A1 = TP("tx", 1)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None


def recs(tp: TP, *offsets: int) -> list[Rec]:
    return [Rec(tp.topic, tp.partition, o) for o in offsets]


def test_split_keeps_fetch_order_and_offsets_per_partition_within_the_limit() -> None:
    parts = [(A0, recs(A0, 5, 6, 7)), (A1, recs(A1, 0, 1))]
    batches = list(split_batches(parts, max_records=2))
    assert [[(r.partition, r.offset) for r in b.records] for b in batches] == [
        [(0, 5), (0, 6)],
        [(0, 7), (1, 0)],
        [(1, 1)],
    ]
    assert [b.offsets for b in batches] == [{A0: [5, 6]}, {A0: [7], A1: [0]}, {A1: [1]}]
    assert list(split_batches([], 10)) == []


def test_merge_concatenates_records_and_offsets_in_order() -> None:
    b1 = RecordBatch(recs(A0, 1, 2), {A0: [1, 2]})
    b2 = RecordBatch(recs(A0, 3) + recs(A1, 9), {A0: [3], A1: [9]})
    merged = RecordBatch.merge([b1, b2])
    assert [r.offset for r in merged.records] == [1, 2, 3, 9]
    assert merged.offsets == {A0: [1, 2, 3], A1: [9]}
    assert RecordBatch.merge([b1]) is b1


class FakeConsumer:
    """The consumer attributes Faust's own ack path reads and writes."""

    def __init__(self) -> None:
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._n_acked = 0
        self._unacked_messages: set[Any] = set()
        self._waiting_for_ack: asyncio.Future[Any] | None = None
        self.flow_active = True


class FakeApp:
    def __init__(self, acking: set[str]) -> None:
        self.consumer = FakeConsumer()
        self.topics = SimpleNamespace(acks_enabled_for=lambda topic: topic in acking)
        self.monitor = SimpleNamespace()
        self.consumer_generation_id = 3

    def channel(self, maxsize: int) -> Any:
        return SimpleNamespace(_subscribers=[])


def _route(app: FakeApp) -> BatchRoute:
    topic = SimpleNamespace(topics=["tx"])
    return BatchRoute(app, "agent", [topic], max_records=100)


def test_ack_records_each_offset_once_as_faust_does_and_releases_the_batch() -> None:
    app = FakeApp({"tx"})
    consumer = app.consumer
    consumer._committed_offset[A0] = 5  # offsets below the committed one are done already
    route = _route(app)
    batch = RecordBatch(recs(A0, 4, 5, 6) + recs(A1, 0), {A0: [4, 5, 6], A1: [0]})
    route.begin(batch)
    assert batch in consumer._unacked_messages  # a rebalance now waits for it

    assert route.ack(batch) == 3
    assert consumer._acked[A0] == [5, 6]
    assert consumer._acked_index[A0] == {5, 6}
    assert consumer._acked[A1] == [0]
    assert consumer._n_acked == 3
    assert batch.acked
    assert batch not in consumer._unacked_messages

    assert route.ack(batch) == 0  # acknowledging twice changes nothing
    again = RecordBatch(recs(A0, 6, 7), {A0: [6, 7]})  # a redelivered offset counts once
    assert route.ack(again) == 1
    assert consumer._acked[A0] == [5, 6, 7]
    assert consumer._n_acked == 4


async def test_ack_wakes_a_rebalance_waiting_for_acknowledgements() -> None:
    app = FakeApp({"tx"})
    waiting: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    app.consumer._waiting_for_ack = waiting
    _route(app).ack(RecordBatch(recs(A0, 0), {A0: [0]}))
    assert waiting.done()


def test_topics_without_acks_are_not_recorded() -> None:
    app = FakeApp(set())
    assert _route(app).ack(RecordBatch(recs(A0, 0, 1), {A0: [0, 1]})) == 0
    assert app.consumer._acked == {}


def test_a_topic_belongs_to_one_route() -> None:
    app = FakeApp({"tx"})
    routes = BatchRoutes()
    assert not routes
    route = routes.add(_route(app))
    assert routes and routes.get("tx") is route and routes.get("other") is None
    with pytest.raises(ValueError, match="tx"):
        routes.add(_route(app))


class FakeQueue(asyncio.Queue[Any]):
    pass


async def test_more_merges_queued_batches_that_fit_and_leaves_the_rest_queued() -> None:
    app = FakeApp({"tx"})
    route = BatchRoute(app, "agent", [SimpleNamespace(topics=["tx"])], max_records=4)
    queue: FakeQueue = FakeQueue()
    route.channel = SimpleNamespace(_subscribers=[SimpleNamespace(queue=queue)])
    first = RecordBatch(recs(A0, 0, 1), {A0: [0, 1]})
    queue.put_nowait(RecordBatch(recs(A0, 2), {A0: [2]}))
    queue.put_nowait(RecordBatch(recs(A0, 3, 4), {A0: [3, 4]}))  # would exceed 4
    merged = await route.more(first)
    assert [r.offset for r in merged.records] == [0, 1, 2]
    assert queue.qsize() == 1

    # With a linger, a short batch waits for what arrives meanwhile.
    short = RecordBatch(recs(A1, 0), {A1: [0]})
    route2 = BatchRoute(app, "agent", [SimpleNamespace(topics=["tx"])], max_records=4)
    queue2: FakeQueue = FakeQueue()
    route2.channel = SimpleNamespace(_subscribers=[SimpleNamespace(queue=queue2)])
    asyncio.get_running_loop().call_soon(queue2.put_nowait, RecordBatch(recs(A1, 1), {A1: [1]}))
    lingered = await route2.more(short, linger_s=0.2)
    assert [r.offset for r in lingered.records] == [0, 1]
    assert await route2.more(short) is short  # no linger, nothing queued: as it came


def test_only_batches_of_the_current_generation_with_the_flow_running_are_processed() -> None:
    app = FakeApp({"tx"})
    route = _route(app)
    batch = next(split_batches([(A0, recs(A0, 0))], 10, generation_id=3))
    assert route.current(batch)
    app.consumer.flow_active = False  # a rebalance is under way
    assert not route.current(batch)
    app.consumer.flow_active = True
    app.consumer_generation_id = 4  # fetched before the rebalance: read again after it
    assert not route.current(batch)


async def test_more_never_merges_batches_of_another_generation() -> None:
    app = FakeApp({"tx"})
    route = BatchRoute(app, "agent", [SimpleNamespace(topics=["tx"])], max_records=10)
    queue: FakeQueue = FakeQueue()
    route.channel = SimpleNamespace(_subscribers=[SimpleNamespace(queue=queue)])
    queue.put_nowait(RecordBatch(recs(A0, 1), {A0: [1]}, generation_id=2))
    queue.put_nowait(RecordBatch(recs(A0, 2), {A0: [2]}, generation_id=3))
    merged = await route.more(RecordBatch(recs(A0, 0), {A0: [0]}, generation_id=3))
    assert [r.offset for r in merged.records] == [0, 2]
    assert merged.generation_id == 3


async def test_serve_processes_current_batches_acks_them_and_never_acks_a_failed_one() -> None:
    app = FakeApp({"tx"})
    route = _route(app)
    done = RecordBatch(recs(A0, 0, 1), {A0: [0, 1]}, generation_id=3)
    stale = RecordBatch(recs(A0, 2), {A0: [2]}, generation_id=2)  # before a rebalance
    failing = RecordBatch(recs(A1, 0), {A1: [0]}, generation_id=3)
    seen: list[list[int]] = []
    errors: list[BaseException] = []

    async def batches() -> Any:
        for batch in (done, stale, failing):
            yield batch

    async def process(records: list[Any]) -> None:
        seen.append([r.offset for r in records])
        if records[0].partition == 1:
            raise RuntimeError("broken broker")

    with pytest.raises(RuntimeError):
        await route.serve(batches(), process, 0.0, errors.append)
    assert seen == [[0, 1], [0]]  # the stale batch was not processed
    assert [str(e) for e in errors] == ["broken broker"]
    assert done.acked and not stale.acked and not failing.acked
    assert app.consumer._acked == {A0: [0, 1]}


class DeliveryConsumer(Service):  # type: ignore[misc]
    """The parts of Faust's consumer that :meth:`BatchRoute.deliver` uses (a mode Service)."""

    def __init__(self) -> None:
        super().__init__()
        self.flow_active = True
        self.suspend_flow = asyncio.Event()
        self.seeks = 0

    async def perform_seek(self) -> None:
        """Faust's seek of every assigned partition to its committed offset."""
        self.seeks += 1


def _full_route() -> tuple[BatchRoute, FlowControlEvent, ThrowableQueue[Any]]:
    """A route whose channel queue (Faust's kind, cleared on resume) is full."""
    flow = FlowControlEvent(initially_suspended=False)
    queue: ThrowableQueue[Any] = ThrowableQueue(maxsize=1, flow_control=flow, clear_on_resume=True)
    queue.put_nowait(RecordBatch(recs(A0, 0), {A0: [0]}))
    route = _route(FakeApp({"tx"}))
    route.channel = SimpleNamespace(_subscribers=[SimpleNamespace(queue=queue)])
    return route, flow, queue


async def _waiting_putter(queue: ThrowableQueue[Any]) -> None:
    while not queue._putters:  # type: ignore[attr-defined]
        await asyncio.sleep(0)


async def test_a_queue_cleared_when_the_flow_resumes_drops_the_batch_but_not_the_drain_loop() -> (
    None
):
    # The flow resumes at the end of every rebalance, and Faust's queue clears then, which
    # cancels a delivery waiting for room. That must read as "not delivered" (the records
    # come again from the committed offset), not end the drain loop with CancelledError.
    route, flow, queue = _full_route()
    batch = RecordBatch(recs(A0, 1), {A0: [1]})
    consumer = DeliveryConsumer()
    delivery = asyncio.create_task(route.deliver(consumer, batch))
    await _waiting_putter(queue)
    flow.resume()
    assert await delivery is False
    assert queue.empty()  # neither the queued batch nor this one will be processed...
    assert route.take_cleared()  # ...so the drain loop reads them again
    assert not route.take_cleared()


async def test_cancelling_the_drain_loop_itself_still_cancels_its_delivery() -> None:
    route, _, queue = _full_route()
    consumer = DeliveryConsumer()
    delivery = asyncio.create_task(route.deliver(consumer, RecordBatch(recs(A0, 1), {A0: [1]})))
    await _waiting_putter(queue)
    delivery.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivery
    assert not route.take_cleared()


def test_batches_queued_without_waiting_and_then_cleared_are_noticed() -> None:
    flow = FlowControlEvent(initially_suspended=False)
    queue: ThrowableQueue[Any] = ThrowableQueue(maxsize=2, flow_control=flow, clear_on_resume=True)
    route = _route(FakeApp({"tx"}))
    route.channel = SimpleNamespace(_subscribers=[SimpleNamespace(queue=queue)])
    assert route._queue() is queue
    queue.put_nowait(RecordBatch(recs(A0, 0), {A0: [0]}))
    queue.put_nowait(RecordBatch(recs(A0, 1), {A0: [1]}))
    assert not route.take_cleared()
    flow.resume()  # the end of a rebalance: both batches dropped unprocessed
    assert queue.empty()
    routes = BatchRoutes()
    routes.add(route)
    assert routes.take_cleared()
    assert not routes.take_cleared()


class SeekingConsumer:
    """A consumer whose seeks fail while ``overtaken`` rebalances are still to come."""

    def __init__(self, overtaken: int) -> None:
        self.overtaken = overtaken
        self.seeks = 0

    async def perform_seek(self) -> None:
        self.seeks += 1
        if self.overtaken:
            self.overtaken -= 1
            raise IllegalStateError("No current assignment for partition tx-1")


async def test_a_cleared_queue_makes_one_seek_to_the_committed_offsets() -> None:
    routes = BatchRoutes()
    route = routes.add(_route(FakeApp({"tx"})))
    consumer = SeekingConsumer(overtaken=0)
    reread = RereadCleared(consumer, routes)
    assert not await reread()
    route.cleared = True
    assert await reread()
    assert not await reread()
    assert consumer.seeks == 1


async def test_a_seek_overtaken_by_a_rebalance_is_done_again_not_raised() -> None:
    # The seek began before a rebalance took a partition away (Kafka, a worker joining):
    # the records dropped by the clear must still come again, so the next call seeks the
    # new assignment instead of ending the drain loop.
    routes = BatchRoutes()
    route = routes.add(_route(FakeApp({"tx"})))
    consumer = SeekingConsumer(overtaken=2)
    reread = RereadCleared(consumer, routes)
    route.cleared = True
    assert await reread()  # overtaken: the current records are dropped...
    assert await reread()  # ...and the seek is tried again (overtaken once more)
    assert await reread()
    assert consumer.seeks == 3
    assert not await reread()  # done: nothing more to seek
    assert consumer.seeks == 3


def _open_route(maxsize: int) -> tuple[BatchRoute, BatchRoutes, FlowControlEvent, Any]:
    """A route with room in its channel queue (Faust's kind, cleared when the flow resumes)."""
    flow = FlowControlEvent(initially_suspended=False)
    queue: ThrowableQueue[Any] = ThrowableQueue(
        maxsize=maxsize, flow_control=flow, clear_on_resume=True
    )
    route = _route(FakeApp({"tx"}))
    route.channel = SimpleNamespace(_subscribers=[SimpleNamespace(queue=queue)])
    routes = BatchRoutes()
    routes.add(route)
    return route, routes, flow, queue


async def test_no_batch_of_a_fetch_is_queued_after_an_earlier_one_was_cleared() -> None:
    # A worker's recovery ends (the flow resumes, Faust clears the queue) while the drain
    # loop commits between two batches of one fetch. The first batch is dropped; the second
    # must not be queued, or the agent applies it first and the first one's records, read
    # again, fall below the accounts' input-offset marks: scored, never counted (the
    # wiped-disk restart under load lost ~800 transactions this way).
    route, routes, flow, queue = _open_route(maxsize=4)
    consumer = DeliveryConsumer()
    first = RecordBatch(recs(A0, 0, 1), {A0: [0, 1]})
    second = RecordBatch(recs(A0, 2, 3), {A0: [2, 3]})
    commits = 0

    async def commit_then_recovery_ends() -> None:
        nonlocal commits
        commits += 1
        if commits == 2:  # the commit before the second batch: recovery completes meanwhile
            await asyncio.sleep(0)
            flow.resume()

    read_offset: dict[TP, int | None] = {A0: None}
    delivered = await deliver_in_order(
        route,
        consumer,
        [first, second],
        commit_then_recovery_ends,
        RereadCleared(consumer, routes),
        read_offset,
    )
    assert commits == 2  # the clear really came between the two batches
    assert delivered is False
    assert queue.empty()  # neither batch will be processed out of order...
    assert consumer.seeks == 1  # ...both come again from the committed offset
    assert read_offset[A0] == 1  # the first was handed over before the clear


async def test_a_fetch_is_queued_whole_and_in_order_without_a_clear() -> None:
    route, routes, _, queue = _open_route(maxsize=4)
    consumer = DeliveryConsumer()
    batches = [RecordBatch(recs(A0, o), {A0: [o]}) for o in range(3)]

    async def no_commit() -> None:
        return None

    read_offset: dict[TP, int | None] = {A0: None}
    assert await deliver_in_order(
        route, consumer, batches, no_commit, RereadCleared(consumer, routes), read_offset
    )
    assert [queue.get_nowait() for _ in range(3)] == batches
    assert consumer.seeks == 0
    assert read_offset[A0] == 2


class FailingSeekConsumer:
    """A consumer whose committed-offset lookup fails once (a coordinator moving)."""

    def __init__(self) -> None:
        self.seeks = 0

    async def perform_seek(self) -> None:
        self.seeks += 1
        if self.seeks == 1:
            raise NotCoordinatorForGroupError("coordinator moved")


async def test_a_failed_seek_to_the_committed_offsets_is_tried_again_not_raised() -> None:
    # Raised, it ended the drain loop: a worker that holds its partitions and reads nothing.
    routes = BatchRoutes()
    route = routes.add(_route(FakeApp({"tx"})))
    consumer = FailingSeekConsumer()
    reread = RereadCleared(consumer, routes)
    route.cleared = True
    assert await reread()  # failed: the current records are dropped...
    assert await reread()  # ...and the seek is done at the next call
    assert consumer.seeks == 2
    assert not await reread()


async def test_a_batch_whose_put_was_woken_before_a_clear_is_never_processed() -> None:
    # The queue is full; the drain loop waits to put B3. The agent takes B1, which wakes
    # that put, and in the same turn of the event loop the flow resumes and Faust clears the
    # queue (dropping B2). The woken put then lands B3 in the emptied queue. Processed, B3
    # would move the accounts' input-offset marks past B2, and B2, read again, would be
    # scored but never counted: a whole batch missing from the state after a restart.
    route, _, flow, queue = _open_route(maxsize=2)
    consumer = DeliveryConsumer()
    b1, b2, b3 = (RecordBatch(recs(A0, o), {A0: [o]}, generation_id=3) for o in (1, 2, 3))
    assert await route.deliver(consumer, b1)
    assert await route.deliver(consumer, b2)
    delivery = asyncio.create_task(route.deliver(consumer, b3))
    await _waiting_putter(queue)
    taken = queue.get_nowait()  # the agent takes B1 (and may process it): B3's put is woken...
    assert taken is b1 and route.current(b1)
    flow.resume()  # ...and the recovery's end clears the queue before that put runs
    await delivery
    assert route.take_cleared()  # the drain loop seeks back to the committed offset...
    landed = [queue.get_nowait() for _ in range(queue.qsize())]
    assert landed == [b3]  # (the woken put did land after the clear)
    assert not route.current(b3)  # ...and the agent drops what was queued before it
    assert await route.more(b3) is b3  # (merging cannot bring it back either)


async def test_batches_queued_after_a_clear_are_processed() -> None:
    route, _, flow, queue = _open_route(maxsize=2)
    consumer = DeliveryConsumer()
    flow.resume()  # a clear with nothing queued
    again = RecordBatch(recs(A0, 1), {A0: [1]}, generation_id=3)
    assert await route.deliver(consumer, again)
    assert queue.get_nowait() is again and route.current(again)


async def test_more_skips_batches_queued_before_a_clear() -> None:
    route, _, _, queue = _open_route(maxsize=4)
    consumer = DeliveryConsumer()
    first = RecordBatch(recs(A0, 1), {A0: [1]}, generation_id=3)
    assert await route.deliver(consumer, first)
    taken = queue.get_nowait()
    stale = RecordBatch(recs(A0, 2), {A0: [2]}, generation_id=3)
    stale.epoch = route.epoch - 1  # delivered before a clear that the queue has seen since
    queue.put_nowait(stale)
    fresh = RecordBatch(recs(A0, 3), {A0: [3]}, generation_id=3)
    assert await route.deliver(consumer, fresh)
    merged = await route.more(taken)
    assert merged.offsets == {A0: [1, 3]}


async def test_a_batch_lingering_across_a_clear_is_dropped_not_merged_with_newer_ones() -> None:
    route, _, flow, queue = _open_route(maxsize=4)
    consumer = DeliveryConsumer()
    first = RecordBatch(recs(A0, 1), {A0: [1]}, generation_id=3)
    assert await route.deliver(consumer, first)
    taken = queue.get_nowait()
    lingering = asyncio.create_task(route.more(taken, linger_s=5.0))
    await asyncio.sleep(0.01)
    flow.resume()  # a clear while the agent lingers for more records
    again = RecordBatch(recs(A0, 1), {A0: [1]}, generation_id=3)  # read again after it
    assert await route.deliver(consumer, again)
    batch = await lingering
    assert batch is taken and not route.current(batch)  # dropped: the re-read covers it
    assert queue.get_nowait() is again and route.current(again)
