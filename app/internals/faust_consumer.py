"""Faust consumer internals: its ack/commit bookkeeping, read offsets and fetch loop.

Batch routes (:mod:`app.kafka.batch_delivery`) acknowledge a fetch's offsets together, the same
bookkeeping ``Consumer.ack`` does per message, and run a copy of Faust's private drain loop
(``Consumer._drain_messages``, copied as :func:`app.kafka.batch_delivery.drain`): both need the
consumer's private state, reached only through the functions here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, MutableSet, Sequence
from contextlib import AbstractContextManager
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.types import TP
from mode.utils.futures import notify

from app.internals.registry import Internal

CONSUMER = "faust.transport.consumer:Consumer"
FAUST = "faust-streaming"


def _entry(name: str, kind: Any, why: str, **kw: Any) -> Internal:
    return Internal(FAUST, kw.pop("owner", CONSUMER), name, kind, why, __name__, **kw)


INTERNALS: tuple[Internal, ...] = (
    _entry(
        "ack_lock",
        "module_attribute",
        "the lock Consumer.ack holds; batch acks take it too",
        owner="faust.transport.consumer",
    ),
    _entry("_unacked_messages", "attribute", "a batch in process makes a revocation wait"),
    _entry("_committed_offset", "attribute", "acks below the committed offset are done"),
    _entry("_acked_index", "attribute", "set of acknowledged offsets per partition"),
    _entry("_acked", "attribute", "list of acknowledged offsets the commit reads"),
    _entry("_n_acked", "attribute", "acks since the last commit (commit_every)"),
    _entry("_waiting_for_ack", "attribute", "future wait_empty sleeps on"),
    _entry("_read_offset", "attribute", "last delivered offset per partition"),
    _entry("_commit_every", "attribute", "the app's broker_commit_every"),
    _entry(
        "_add_gap",
        "method",
        "skipped offsets still let commits pass",
        params=("self", "tp", "offset_from", "offset_to"),
    ),
    _entry(
        "_wait_next_records",
        "method",
        "the fetch the drain loop waits on",
        params=("self", "timeout"),
    ),
    _entry("_buffered_partitions", "attribute", "partitions with records held by flow control"),
    _entry("_to_message", "method", "builds Faust's Message", params=("self", "tp", "record")),
    _entry(
        "_stopped",
        "attribute",
        "the drain loop's stop check, as in Faust (not should_stop, which also means crashed)",
        owner="mode.services:Service",
    ),
    _entry(
        "_drain_messages",
        "routine",
        "copied as app.kafka.batch_delivery.drain; a changed original means the copy needs review",
        params=("self", "fetcher"),
        source_sha256="44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
    ),
)


def ack_lock() -> AbstractContextManager[Any]:
    """Return the lock Faust's ``Consumer.ack`` updates the acknowledged offsets under."""
    lock: AbstractContextManager[Any] = faust_consumer.ack_lock  # type: ignore[attr-defined]
    return lock


def add_unacked(consumer: Any, item: Any) -> None:
    """Count ``item`` as an unacknowledged message: a rebalance waits for it."""
    consumer._unacked_messages.add(item)


def discard_unacked(consumer: Any, item: Any) -> None:
    """Stop counting ``item`` as unacknowledged."""
    consumer._unacked_messages.discard(item)


def record_acks(
    consumer: Any, offsets: Mapping[TP, Sequence[int]], acks_enabled_for: Callable[[str], bool]
) -> int:
    """Mark ``offsets`` acknowledged as ``Consumer.ack`` does; return how many were new.

    Call it holding :func:`ack_lock`.
    """
    n = 0
    for tp, tp_offsets in offsets.items():
        if not acks_enabled_for(tp.topic):
            continue
        committed = consumer._committed_offset[tp]
        index = consumer._acked_index[tp]
        acked = consumer._acked[tp]
        for offset in tp_offsets:
            if (committed is None or offset >= committed) and offset not in index:
                index.add(offset)
                acked.append(offset)
                n += 1
    consumer._n_acked += n
    return n


def wake_ack_waiters(consumer: Any) -> None:
    """Wake ``wait_empty`` (a rebalance waiting for acknowledgements)."""
    notify(consumer._waiting_for_ack)


def committed_offsets(consumer: Any) -> Mapping[TP, int | None]:
    """Return the offsets the consumer last committed, per partition."""
    committed: Mapping[TP, int | None] = consumer._committed_offset
    return committed


def acked_offsets(consumer: Any) -> Mapping[TP, list[int]]:
    """Return the acknowledged offsets not yet committed, per partition."""
    acked: Mapping[TP, list[int]] = consumer._acked
    return acked


def unacked_messages(consumer: Any) -> MutableSet[Any]:
    """Return the messages (and batches) in process (a WeakSet)."""
    unacked: MutableSet[Any] = consumer._unacked_messages
    return unacked


def acks_since_commit(consumer: Any) -> int:
    """Return how many offsets were acknowledged since the last commit."""
    return int(consumer._n_acked)


def read_offsets(consumer: Any) -> MutableMapping[TP, int | None]:
    """Return the consumer's read offsets (the last delivered offset per partition)."""
    offsets: MutableMapping[TP, int | None] = consumer._read_offset
    return offsets


def commit_every(consumer: Any) -> int | None:
    """Return after how many acknowledgements the consumer commits (None: by time only)."""
    every: int | None = consumer._commit_every
    return every


def take_commit_due(consumer: Any, every: int | None) -> bool:
    """Tell whether ``every`` acknowledgements were reached; reset the count if so."""
    if every is not None and consumer._n_acked >= every:
        consumer._n_acked = 0
        return True
    return False


async def add_gap(consumer: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    """Record offsets the broker skipped, so commits move past them."""
    await consumer._add_gap(tp, offset_from, offset_to)


async def wait_next_records(consumer: Any, timeout_s: float) -> tuple[Any, Any]:
    """Wait for the next fetch: ``(records by partition or None, active partitions)``."""
    records, active = await consumer._wait_next_records(timeout_s)
    return records, active


def buffered_partitions(consumer: Any) -> set[TP]:
    """Return the partitions whose records flow control holds back."""
    buffered: set[TP] = consumer._buffered_partitions
    return buffered


def to_message(consumer: Any, tp: TP, record: Any) -> Any:
    """Return Faust's ``Message`` for a client record."""
    return consumer._to_message(tp, record)


def stop_check(service: Any) -> Callable[[], bool]:
    """Return the stopped-event check of a mode service (the drain loop's loop condition)."""
    is_set: Callable[[], bool] = service._stopped.is_set
    return is_set
