"""Which partitions a fetch leaves out on the embedded broker (app.kafka.tansu_compat)."""

from __future__ import annotations

from typing import NamedTuple

from app.kafka.tansu_compat import QuietPartitions


class TP(NamedTuple):
    topic: str
    partition: int


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


TX0, TX1 = TP("transactions", 0), TP("transactions", 1)
LB0, LB1 = TP("labels", 0), TP("labels", 1)
ALL = [TX0, TX1, LB0, LB1]


def quiet(clock: Clock) -> QuietPartitions:
    return QuietPartitions(["transactions"], quiet_after_s=1.0, fetch_every_s=0.2, clock=clock)


def quiet_after_idle() -> tuple[QuietPartitions, Clock, dict[TP, int]]:
    """Return a selector whose labels partitions have just gone quiet (after a full fetch)."""
    clock = Clock()
    q = quiet(clock)
    positions = dict.fromkeys(ALL, 0)
    q.select(ALL, positions.get)
    clock.now += 1.5
    q.select(ALL, positions.get)  # a full fetch
    return q, clock, positions


def test_new_partitions_are_fetched_until_they_have_been_idle_for_a_while() -> None:
    clock = Clock()
    q = quiet(clock)
    positions = dict.fromkeys(ALL, 0)
    assert q.select(ALL, positions.get) == ALL  # first fetch: everything
    clock.now += 0.5
    assert q.select(ALL, positions.get) == ALL  # idle for 0.5 s: still active
    clock.now += 0.6
    chosen = q.select(ALL, positions.get)  # idle for 1.1 s, but 1.1 s since the last full
    assert chosen == ALL
    clock.now += 0.01
    assert q.select(ALL, positions.get) == [TX0, TX1]  # quiet labels left out


def test_quiet_partitions_are_fetched_once_every_interval() -> None:
    q, clock, positions = quiet_after_idle()
    picks = []
    for _ in range(100):  # one second of 10 ms fetches
        clock.now += 0.01
        picks.append(LB0 in q.select(ALL, positions.get))
    assert 4 <= sum(picks) <= 6  # about every 0.2 s, not every 10 ms
    assert all(TX0 in q.select(ALL, positions.get) for _ in range(3))


def test_a_moved_position_makes_a_partition_active_again_at_once() -> None:
    q, clock, positions = quiet_after_idle()
    clock.now += 0.01
    assert LB1 not in q.select(ALL, positions.get)
    positions[LB1] = 7  # a record was consumed (or the partition was seeked)
    clock.now += 0.01
    assert q.select(ALL, positions.get) == [TX0, TX1, LB1]


def test_the_scoring_inputs_are_never_left_out() -> None:
    clock = Clock()
    q = quiet(clock)
    positions = dict.fromkeys(ALL, 0)
    for _ in range(500):
        clock.now += 0.01
        chosen = q.select(ALL, positions.get)
        assert TX0 in chosen and TX1 in chosen


def test_revoked_partitions_are_forgotten() -> None:
    clock = Clock()
    q = quiet(clock)
    many = [TP("labels", p) for p in range(40)]
    q.select(many, lambda tp: 0)
    q.select([TX0], lambda tp: 0)
    assert len(q._seen) == 1
