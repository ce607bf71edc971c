"""Whether an account's state has applied a transaction already: input offsets, then tx ids.

After a crash a worker reads again from the last committed offset, so everything since that
commit is redelivered: a time span, not a count. The last 32 ``tx_id``s an account remembers
cannot cover that (33 redelivered transactions of one account counted twice), so the state
also remembers, per input topic, the offset of the last transaction it applied (as Kafka
Streams checkpoints do). Each account's transactions reach its state in offset order within
one partition of each input topic, so a redelivered record is exactly one at or below that
mark. The mark lives in the account's own state value, so every write of it (the RocksDB
write batch, the changelog record that a wiped disk recovers from) carries state and mark
together: no multi-record write has to be atomic. The partition is implied: both input
topics are co-partitioned with the table, and an account lives in one partition.

Offsets restart when a topic is recreated (the embedded broker loses everything on every
stop), and a stale mark would turn new transactions into replays. A mark is therefore only
trusted while the partition's log reaches it: a record at offset ``o`` of a log whose end is
``e`` can only be a redelivery of the applied offset ``m`` if ``m < e``. A topic whose end is
at or below the mark was recreated, so the mark is dropped (and replaced by the new offset
when the record is applied). When the end is not known the mark is trusted: a double count
is the failure this module exists to prevent. What this cannot see is a recreated topic that
has already grown past an old mark before the worker reads it; the tx_id memory remains as a
second guard, and catches the same transaction sent twice by a producer at two offsets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InputPosition:
    """Where a transaction was read: its topic, its offset and the partition's log end.

    ``end_offset`` is the partition's high watermark as the consumer last saw it (one past
    the last record), ``None`` when unknown.
    """

    topic: str
    offset: int
    end_offset: int | None = None


def mark_applies(mark: int | None, pos: InputPosition) -> bool:
    """Tell whether a stored mark describes ``pos``'s topic (not an earlier, recreated one)."""
    return mark is not None and (pos.end_offset is None or mark < pos.end_offset)


def already_applied(
    marks: dict[str, int], seen: list[int], id_hash: int, pos: InputPosition | None
) -> bool:
    """Tell whether a transaction (its id hash, where it was read) is in the state already."""
    if id_hash in seen:
        return True
    if pos is None:  # offline replay: ids only
        return False
    mark = marks.get(pos.topic)
    return mark is not None and mark_applies(mark, pos) and pos.offset <= mark


def advance(marks: dict[str, int], pos: InputPosition) -> None:
    """Record that the transaction read at ``pos`` was applied."""
    mark = marks.get(pos.topic)
    marks[pos.topic] = (
        pos.offset if mark is None or not mark_applies(mark, pos) else max(mark, pos.offset)
    )
