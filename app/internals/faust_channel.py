"""Faust channel and queue internals a batch route peeks at.

A batch route (:class:`app.kafka.batch_delivery.BatchRoute`) queues batches on the channel its
agent iterates, and merges the batches queued behind the one taken: it needs the channel's
subscriber (the agent's queue) and the queue's items without taking them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from app.internals.registry import Internal

INTERNALS: tuple[Internal, ...] = (
    Internal(
        "faust-streaming",
        "faust.channels:Channel",
        "_subscribers",
        "attribute",
        "the agent's subscription, whose queue a batch route fills",
        __name__,
    ),
    Internal(
        "cpython",
        "asyncio:Queue",
        "_queue",
        "attribute",
        "the queued items, read to merge the next batches without taking them first",
        __name__,
    ),
)


def subscriber_queue(channel: Any) -> Any | None:
    """Return the queue of the channel's first subscriber (None before anyone iterates it)."""
    for subscriber in channel._subscribers:
        return subscriber.queue
    return None


def queued_items(queue: Any) -> deque[Any]:
    """Return the items waiting in an ``asyncio.Queue`` (oldest first), left queued."""
    items: deque[Any] = queue._queue
    return items
