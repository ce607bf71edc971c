"""Per-counterparty risk from delayed labels: idempotence, verdict changes, day windows."""

from __future__ import annotations

import math

import pytest

from models.counterparty_risk import (
    DAY_MS,
    MAX_REMEMBERED,
    SLOTS_DAYS,
    CounterpartyRisk,
    apply_label,
    risk_features,
)

#: 2024-03-01T00:00:00Z, the start of a UTC day.
DAY0 = 1_709_251_200_000
D = DAY0 // DAY_MS


def at(day: int, hour: int = 12) -> int:
    """Epoch ms of ``hour`` o'clock on ``day`` days after DAY0."""
    return DAY0 + day * DAY_MS + hour * 3_600_000


def test_day0_is_a_utc_midnight() -> None:
    assert DAY0 % DAY_MS == 0


def test_first_label_creates_state_and_counts_in_its_arrival_day() -> None:
    risk, changed = apply_label(None, "t1", True, at(0))
    assert changed
    assert risk.days == [[D, 1, 1]]
    assert risk.counts(at(0), 1) == (1, 1)


def test_same_verdict_twice_is_a_no_op() -> None:
    risk, _ = apply_label(None, "t1", True, at(0))
    before = risk.to_bytes()
    again, changed = apply_label(risk, "t1", True, at(3))  # redelivered later: still one
    assert not changed
    assert again.to_bytes() == before
    assert again.counts(at(3), 30) == (1, 1)


def test_changed_verdict_moves_the_count_in_its_original_day() -> None:
    risk, _ = apply_label(None, "t1", True, at(0))
    risk, _ = apply_label(risk, "t2", False, at(1))
    risk, changed = apply_label(risk, "t1", False, at(2))
    assert changed
    assert risk.days == [[D, 1, 0], [D + 1, 1, 0]]  # nothing added on day 2
    assert risk.counts(at(2), 30) == (2, 0)
    risk, changed = apply_label(risk, "t1", True, at(4))
    assert changed
    assert risk.days == [[D, 1, 1], [D + 1, 1, 0]]
    assert risk.counts(at(4), 30) == (2, 1)


def test_out_of_order_labels_keep_buckets_sorted() -> None:
    risk = None
    for tx_id, day in (("a", 5), ("b", 2), ("c", 9), ("d", 2), ("e", 7)):
        risk, _ = apply_label(risk, tx_id, tx_id in ("b", "e"), at(day))
    assert risk is not None
    assert risk.days == [[D + 2, 2, 1], [D + 5, 1, 0], [D + 7, 1, 1], [D + 9, 1, 0]]


def test_windows_count_by_label_arrival_day() -> None:
    risk = None
    # Label arrival days relative to "today" (day 40): 0 (today), 1, 6, 7, 29, 30 days ago.
    for i, (ago, fraud) in enumerate(((0, True), (1, False), (6, True), (7, True), (29, False))):
        risk, _ = apply_label(risk, f"t{i}", fraud, at(40 - ago))
    assert risk is not None
    now = at(40, 23)
    assert risk.counts(now, 1) == (1, 1)  # today only
    assert risk.counts(now, 7) == (3, 2)  # today and the 6 days before
    assert risk.counts(now, 30) == (5, 3)  # today and the 29 days before
    # A label that arrives later in the day (after ``now``'s day) is not counted for
    # earlier days, and one that arrived tomorrow is not counted today.
    risk, _ = apply_label(risk, "tomorrow", True, at(41, 1))
    assert risk.counts(now, 7) == (3, 2)
    assert risk.counts(at(41, 2), 1) == (1, 1)


def test_day_buckets_are_bounded_to_30_days() -> None:
    risk = None
    for day in range(100):
        risk, _ = apply_label(risk, f"t{day}", day % 2 == 0, at(day))
    assert risk is not None
    days = [b[0] for b in risk.days]
    assert len(days) <= SLOTS_DAYS
    assert days == list(range(D + 100 - SLOTS_DAYS, D + 100))
    assert risk.counts(at(99), 30) == (30, 15)
    assert len(risk.verdicts) <= MAX_REMEMBERED


def test_a_label_older_than_the_window_is_not_kept() -> None:
    risk, _ = apply_label(None, "new", True, at(40))
    risk, changed = apply_label(risk, "old", True, at(5))
    assert changed
    assert risk.days == [[D + 40, 1, 1]]


def test_verdict_change_of_a_pruned_day_does_not_make_negative_counts() -> None:
    """A verdict whose day bucket was dropped must not re-create it with -1 frauds."""
    risk, _ = apply_label(None, "t-old", True, at(0))
    risk, _ = apply_label(risk, "t-new", False, at(SLOTS_DAYS + 5))  # drops day 0
    assert [b[0] for b in risk.days] == [D + SLOTS_DAYS + 5]
    risk, _ = apply_label(risk, "t-old", False, at(SLOTS_DAYS + 6))
    for bucket in risk.days:
        assert bucket[1] >= 0 and bucket[2] >= 0
        assert bucket[2] <= bucket[1]
    # A late transaction whose window still covers day 0 sees no negative count.
    assert risk.counts(at(10), 30)[1] >= 0


def test_remembered_verdicts_are_bounded() -> None:
    risk = None
    for i in range(MAX_REMEMBERED + 10):
        risk, _ = apply_label(risk, f"t{i}", False, at(0))
    assert risk is not None
    assert len(risk.verdicts) == MAX_REMEMBERED
    assert risk.counts(at(0), 1) == (MAX_REMEMBERED + 10, 0)


def test_risk_features_are_nan_without_state() -> None:
    values = risk_features(None, at(0))
    assert len(values) == 4
    assert all(math.isnan(v) for v in values)


def test_risk_features_nan_rates_when_no_label_in_window() -> None:
    risk, _ = apply_label(None, "t1", True, at(0))
    rate_1d, rate_7d, rate_30d, frauds_30d = risk_features(risk, at(10))
    assert math.isnan(rate_1d) and math.isnan(rate_7d)
    assert rate_30d == 1.0
    assert frauds_30d == 1.0
    rates = risk_features(risk, at(40))
    assert all(math.isnan(v) for v in rates[:3])
    assert rates[3] == 0.0


def test_risk_features_hand_computed() -> None:
    risk = None
    labels = [("a", True, 0), ("b", False, 0), ("c", False, 0), ("d", True, 4), ("e", False, 20)]
    for tx_id, fraud, ago in labels:
        risk, _ = apply_label(risk, tx_id, fraud, at(25 - ago))
    values = risk_features(risk, at(25, 18))
    assert values == pytest.approx([1 / 3, 2 / 4, 2 / 5, 2.0])


def test_bytes_round_trip() -> None:
    risk = None
    for i in range(5):
        risk, _ = apply_label(risk, f"t{i}", i % 2 == 1, at(i))
    assert risk is not None
    back = CounterpartyRisk.from_bytes(risk.to_bytes())
    assert back == risk
    assert back.counts(at(4), 30) == (5, 2)
    # The restored state still recognises the remembered labels.
    _, changed = apply_label(back, "t1", True, at(6))
    assert not changed


def test_from_bytes_refuses_another_format() -> None:
    with pytest.raises(ValueError, match="format"):
        CounterpartyRisk.from_bytes(b"[99, [], []]")
