"""Bucketed rolling windows: the one implementation behind features, AML and label risk."""

from __future__ import annotations

import random

import pytest

from models.windows import add, largest, sums


def test_events_of_one_bucket_add_up_in_it() -> None:
    buckets: list[list[float]] = []
    add(buckets, 10, (1, 2.5), 5)
    add(buckets, 10, (1, 1.5), 5)
    assert buckets == [[10, 2, 4.0]]
    assert sums(buckets, 10, 5, 2) == [2.0, 4.0]


def test_a_late_event_lands_in_its_own_bucket_in_order() -> None:
    buckets: list[list[float]] = []
    for idx in (3, 7, 5):
        add(buckets, idx, (1, float(idx)), 10)
    assert [b[0] for b in buckets] == [3, 5, 7]
    # The window ending at 5 does not see the later bucket 7.
    assert sums(buckets, 5, 10, 2) == [2.0, 8.0]


def test_buckets_that_leave_the_newest_window_are_dropped() -> None:
    buckets: list[list[int]] = []
    add(buckets, 1, (1,), 3)
    add(buckets, 2, (1,), 3)
    add(buckets, 4, (1,), 3)  # window (1, 4]: bucket 1 leaves
    assert buckets == [[2, 1], [4, 1]]
    add(buckets, 1, (1,), 3)  # older than the whole window: not kept
    assert buckets == [[2, 1], [4, 1]]


def test_window_covers_idx_minus_slots_exclusive_to_idx_inclusive() -> None:
    buckets = [[i, 1.0] for i in range(10)]
    assert sums(buckets, 6, 3, 1) == [3.0]  # buckets 4, 5, 6
    assert sums(buckets, 6, 3, 1, newest_first=False) == [3.0]
    assert sums([], 6, 3, 2) == [0.0, 0.0]


def test_a_bucket_keeps_the_types_of_its_values() -> None:
    """Counts stay ints where the state stores ints: the JSON bytes depend on it."""
    buckets: list[list[int]] = []
    add(buckets, 4, (1, 0), 30)
    add(buckets, 4, (0, -1), 30)
    assert buckets == [[4, 1, -1]]
    assert all(type(v) is int for v in buckets[0])


def test_the_order_of_float_additions_is_the_callers() -> None:
    buckets = [[0, 1e16], [1, 1.0], [2, -1e16], [3, 1.0]]
    # Beyond 2**53 a 1 is lost next to 1e16: which 1s survive depends on the order.
    assert sums(buckets, 3, 10, 1) == [0.0]  # ((1 + -1e16) + 1) + 1e16
    assert sums(buckets, 3, 10, 1, newest_first=False) == [1.0]  # ((1e16 + 1) + -1e16) + 1


@pytest.mark.parametrize("seed", range(20))
def test_matches_a_brute_force_window_over_random_event_times(seed: int) -> None:
    rng = random.Random(seed)
    slots = rng.randint(1, 12)
    buckets: list[list[float]] = []
    events: list[tuple[int, float]] = []
    for _ in range(200):
        idx = rng.randint(0, 60)
        amount = float(rng.randint(1, 500))
        add(buckets, idx, (1, amount), slots)
        events.append((idx, amount))
        newest = max(i for i, _ in events)
        assert [b[0] for b in buckets] == sorted({b[0] for b in buckets})
        assert all(b[0] > newest - slots for b in buckets)
        for end in (idx, newest, rng.randint(0, 60)):
            kept = [(i, a) for i, a in events if end - slots < i <= end and i > newest - slots]
            expected = [float(len(kept)), sum(a for _, a in kept)]
            assert sums(buckets, end, slots, 2) == expected
            assert sums(buckets, end, slots, 2, newest_first=False) == expected


def test_a_peak_bucket_keeps_the_largest_value_and_largest_reads_the_window() -> None:
    buckets: list[list[float]] = []
    add(buckets, 10, (40.0,), 3, peak=True)
    add(buckets, 10, (25.0,), 3, peak=True)  # smaller: the bucket keeps 40
    add(buckets, 11, (7.0,), 3, peak=True)
    add(buckets, 12, (90.0,), 3, peak=True)
    assert buckets == [[10, 40.0], [11, 7.0], [12, 90.0]]
    assert largest(buckets, 11, 3) == 40.0  # (8, 11]: the later 90 is not seen
    assert largest(buckets, 12, 3) == 90.0
    assert largest(buckets, 14, 3) == 90.0  # (11, 14]: only bucket 12 is left
    assert largest(buckets, 15, 3) is None
    assert largest([], 12, 3) is None
    add(buckets, 13, (1.0,), 3, peak=True)  # window (10, 13]: bucket 10 leaves
    assert [b[0] for b in buckets] == [11, 12, 13]


@pytest.mark.parametrize("seed", range(10))
def test_largest_matches_a_brute_force_window_over_random_event_times(seed: int) -> None:
    rng = random.Random(seed)
    slots = rng.randint(1, 12)
    buckets: list[list[float]] = []
    events: list[tuple[int, float]] = []
    for _ in range(200):
        idx = rng.randint(0, 60)
        amount = float(rng.randint(1, 500))
        add(buckets, idx, (amount,), slots, peak=True)
        events.append((idx, amount))
        newest = max(i for i, _ in events)
        assert len(buckets) <= slots
        for end in (idx, newest, rng.randint(0, 60)):
            kept = [a for i, a in events if end - slots < i <= end and i > newest - slots]
            assert largest(buckets, end, slots) == (max(kept) if kept else None)
