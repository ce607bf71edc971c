"""Bucketed rolling windows by event time: the one implementation of the velocity features,
the AML rules and the counterparty risk.

A window's state is a list of buckets ``[index, value, ...]`` in ascending ``index`` order,
where ``index = ts_ms // width``. A window of ``slots`` buckets that ends in bucket ``idx``
covers ``(idx - slots, idx]``; a late event lands in its own bucket, and a bucket that leaves
the window of the newest one is dropped, so the state stays bounded. The buckets are plain
lists because they are stored as they are (JSON arrays in the table values): their layout is
part of every state format that holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

#: A bucket's values: counts of events (int) or sums of amounts (float).
N = TypeVar("N", int, float)


def add(
    buckets: list[list[N]], idx: int, values: Sequence[N], slots: int, *, peak: bool = False
) -> None:
    """Add ``values`` to bucket ``idx`` and drop the buckets that left the window.

    With ``peak`` the bucket keeps the largest of each value instead of the sum (a running
    maximum per bucket, read with :func:`largest`). A bucket older than the whole window of
    the newest one is not kept (nothing to add to).
    """
    pos = len(buckets)
    while pos > 0 and buckets[pos - 1][0] > idx:
        pos -= 1
    if pos > 0 and buckets[pos - 1][0] == idx:
        b = buckets[pos - 1]
        for k, v in enumerate(values, start=1):
            if not peak:
                b[k] += v
            elif v > b[k]:
                b[k] = v
    else:
        head = buckets[-1][0] if buckets else idx
        if idx <= head - slots:
            return
        bucket: list[N] = [idx]
        bucket.extend(values)
        buckets.insert(pos, bucket)
    head = buckets[-1][0]
    while buckets and buckets[0][0] <= head - slots:
        del buckets[0]


def sums(
    buckets: Sequence[Sequence[float]],
    idx: int,
    slots: int,
    width: int,
    *,
    newest_first: bool = True,
) -> list[float]:
    """Return the ``width`` sums of the buckets in ``(idx - slots, idx]``.

    ``newest_first`` is the order of the float additions. Both orders are in use (features
    and counterparty risk add newest first, the AML rules oldest first), and the order
    decides the last bit of a sum of amounts, so each caller keeps its own.
    """
    out = [0.0] * width
    lo = idx - slots
    if newest_first:
        for b in reversed(buckets):
            if b[0] <= lo:
                break
            if b[0] <= idx:
                for k in range(width):
                    out[k] += b[k + 1]
    else:
        for b in buckets:
            if lo < b[0] <= idx:
                for k in range(width):
                    out[k] += b[k + 1]
    return out


def largest(buckets: Sequence[Sequence[float]], idx: int, slots: int) -> float | None:
    """Return the largest first value of the buckets in ``(idx - slots, idx]`` (None: none)."""
    out: float | None = None
    lo = idx - slots
    for b in reversed(buckets):
        if b[0] <= lo:
            break
        if b[0] <= idx and (out is None or b[1] > out):
            out = b[1]
    return out
