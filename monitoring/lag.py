"""Consumer lag per partition: the log end offset minus the group's committed offset.

Faust's sensor exports end and committed offsets, but only from the records it has seen and
clears both at every rebalance, so it cannot show a partition that is stuck. Vigil asks for
the offsets on a timer instead (see :mod:`monitoring.collectors`); this module is the pure
arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

K = TypeVar("K")


def consumer_lag(
    end_offsets: Mapping[K, int | None],
    committed: Mapping[K, int | None],
    earliest: Mapping[K, int | None] | None = None,
) -> dict[K, int]:
    """Return the lag of every partition whose end offset is known.

    A partition without a committed offset is read from its earliest offset (the worker's
    ``auto_offset_reset`` is ``earliest``), so its lag counts from there (0 if unknown).
    Lag is never negative: a commit can overtake a stale end offset.
    """
    start = earliest or {}
    lag: dict[K, int] = {}
    for key, end in end_offsets.items():
        if end is None:
            continue
        done = committed.get(key)
        if done is None:
            done = start.get(key) or 0
        lag[key] = max(0, int(end) - int(done))
    return lag
