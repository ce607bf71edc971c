"""Offline event-time replay: delayed label reveal, label events, replays, feature parity."""

from __future__ import annotations

import math
import random

from models.counterparty_risk import (
    DAY_MS,
    RISK_FEATURE_NAMES,
    CounterpartyRisk,
    apply_label,
    risk_features,
)
from models.features import FEATURE_NAMES, AccountState, update_account
from models.offline.replay import DEFAULT_LABEL_DELAY_DAYS, LabelEvent, Replayer
from models.transaction import Transaction, transaction_from_dict

DAY0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z
HOUR = 3_600_000
_CP0 = FEATURE_NAMES.index(RISK_FEATURE_NAMES[0])
CP = slice(_CP0, _CP0 + 4)


def tx(
    tx_id: str, ts: int, account: str = "acc", cp: str | None = "m1", amount: float = 10.0
) -> Transaction:
    doc: dict[str, object] = {"tx_id": tx_id, "ts": ts, "account_id": account, "amount": amount}
    if cp is not None:
        doc["counterparty_id"] = cp
    return transaction_from_dict(doc)


def same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


def test_default_delay_is_seven_days() -> None:
    assert DEFAULT_LABEL_DELAY_DAYS == 7.0
    assert Replayer().label_delay_ms == 7 * DAY_MS


def test_label_revealed_exactly_label_delay_after_its_transaction() -> None:
    delay = 2 * DAY_MS
    r = Replayer(label_delay_ms=delay)
    t0 = DAY0 + 10 * HOUR
    r.step(tx("fraud", t0, account="a1"), label=1)
    before = r.step(tx("b", t0 + delay - 1, account="a2"), label=0)
    assert all(math.isnan(v) for v in before.features[CP])
    at_arrival = r.step(tx("c", t0 + delay, account="a3"), label=0)
    assert at_arrival.features[CP] == [1.0, 1.0, 1.0, 1.0]
    # b's and c's legit verdicts arrive at t0 + 2 delay - 1 and t0 + 2 delay (day 4), the
    # fraud verdict arrived on day 2: 1 day window 0 of 2, 7 days 1 of 3.
    later = r.step(tx("d", t0 + 2 * delay, account="a4"))
    assert later.features[CP] == [0.0, 1 / 3, 1 / 3, 1.0]


def test_no_feature_sees_a_label_before_it_arrived() -> None:
    """Replay features equal risk rebuilt only from labels whose arrival is <= the tx time."""
    rng = random.Random(11)
    delay = int(1.5 * DAY_MS)
    txs = []
    ts = DAY0
    for i in range(400):
        ts += rng.randrange(0, 4 * HOUR)
        txs.append((tx(f"t{i}", ts, f"a{rng.randrange(20)}", f"m{rng.randrange(5)}"), i % 7 == 0))
    r = Replayer(label_delay_ms=delay)
    for n, (t, fraud) in enumerate(txs):
        step = r.step(t, label=1 if fraud else 0)
        arrived = sorted(
            (p.ts_ms + delay, p.tx_id, f)
            for p, f in txs[:n]
            if p.counterparty_id == t.counterparty_id and p.ts_ms + delay <= t.ts_ms
        )
        risk: CounterpartyRisk | None = None
        for arrival, tx_id, f in arrived:
            risk, _ = apply_label(risk, tx_id, f, arrival)
        assert same(step.features[CP], risk_features(risk, t.ts_ms)), n


def test_identical_to_update_account_called_directly() -> None:
    rng = random.Random(3)
    txs = []
    ts = DAY0
    for i in range(300):
        ts += rng.randrange(0, 2 * HOUR)
        cp = None if i % 9 == 0 else f"m{rng.randrange(30)}"
        txs.append(tx(f"t{i}", ts, f"a{rng.randrange(15)}", cp, float(rng.randrange(1, 500))))
    r = Replayer(label_delay_ms=None)  # no labels: counterparty risk stays empty
    states: dict[str, AccountState] = {}
    for t in txs:
        step = r.step(t, label=1)
        expected, states[t.account_id] = update_account(states.get(t.account_id), t, None)
        assert same(step.features, expected)
        assert step.state.to_bytes() == states[t.account_id].to_bytes()
    assert r.counterparties == {}


def test_identical_to_update_account_with_the_same_risk_state() -> None:
    delay = DAY_MS
    r = Replayer(label_delay_ms=delay)
    risks: dict[str, CounterpartyRisk] = {}
    states: dict[str, AccountState] = {}
    history: list[tuple[Transaction, int]] = []
    for i in range(120):
        t = tx(f"t{i}", DAY0 + i * 2 * HOUR, f"a{i % 4}", f"m{i % 3}", float(i + 1))
        label = 1 if i % 5 == 0 else 0
        for prev, lab in list(history):  # reveal by hand, in arrival order
            if prev.ts_ms + delay <= t.ts_ms:
                cp = prev.counterparty_id
                assert cp is not None
                risks[cp], _ = apply_label(risks.get(cp), prev.tx_id, lab == 1, prev.ts_ms + delay)
                history.remove((prev, lab))
        step = r.step(t, label)
        expected, states[t.account_id] = update_account(
            states.get(t.account_id), t, risks.get(t.counterparty_id or "")
        )
        assert same(step.features, expected)
        history.append((t, label))
    assert {k: v.to_bytes() for k, v in r.counterparties.items()} == {
        k: v.to_bytes() for k, v in risks.items()
    }


def test_labels_of_the_data_are_never_revealed_without_a_delay() -> None:
    r = Replayer(label_delay_ms=None)
    r.step(tx("a", DAY0), label=1)
    step = r.step(tx("b", DAY0 + 40 * DAY_MS), label=1)
    assert all(math.isnan(v) for v in step.features[CP])
    assert r.counterparties == {}


def test_add_label_applies_before_the_first_transaction_at_or_after_its_time() -> None:
    r = Replayer(label_delay_ms=None)
    r.add_label(LabelEvent(DAY0 + 5 * HOUR, "m1", "x1", True))
    r.add_label(LabelEvent(DAY0 + 1 * HOUR, "m1", "x2", False))
    first = r.step(tx("a", DAY0 + 1 * HOUR - 1))
    assert all(math.isnan(v) for v in first.features[CP])
    second = r.step(tx("b", DAY0 + 1 * HOUR))
    assert second.features[CP] == [0.0, 0.0, 0.0, 0.0]
    third = r.step(tx("c", DAY0 + 5 * HOUR))
    assert third.features[CP] == [0.5, 0.5, 0.5, 1.0]
    other = r.step(tx("d", DAY0 + 6 * HOUR, cp="m2"))
    assert all(math.isnan(v) for v in other.features[CP])


def test_label_events_at_the_same_time_apply_in_the_order_added() -> None:
    r = Replayer(label_delay_ms=None)
    r.add_label(LabelEvent(DAY0, "m1", "x", True))
    r.add_label(LabelEvent(DAY0, "m1", "x", False))  # the verdict changed: legit wins
    step = r.step(tx("a", DAY0 + HOUR))
    assert step.features[CP] == [0.0, 0.0, 0.0, 0.0]


def test_reveal_until_applies_only_arrived_labels() -> None:
    r = Replayer(label_delay_ms=None)
    r.add_label(LabelEvent(DAY0, "m1", "x", True))
    r.add_label(LabelEvent(DAY0 + DAY_MS, "m1", "y", True))
    r.reveal_until(DAY0 + 1)
    assert r.counterparties["m1"].counts(DAY0 + 2 * DAY_MS, 30) == (1, 1)
    r.reveal_until(DAY0 + DAY_MS)
    assert r.counterparties["m1"].counts(DAY0 + 2 * DAY_MS, 30) == (2, 2)


def test_transaction_without_counterparty_queues_no_label() -> None:
    r = Replayer(label_delay_ms=0)
    r.step(tx("a", DAY0, cp=None), label=1)
    r.step(tx("b", DAY0 + DAY_MS), label=0)
    assert set(r.counterparties) == set()
    r.step(tx("c", DAY0 + 2 * DAY_MS), label=0)
    assert set(r.counterparties) == {"m1"}


def test_replayed_flags_a_duplicate_tx_id_and_counts_it_once() -> None:
    r = Replayer(label_delay_ms=HOUR)
    first = r.step(tx("dup", DAY0, amount=50.0), label=1)
    assert not first.replayed
    again = r.step(tx("dup", DAY0, amount=50.0), label=1)
    assert again.replayed
    assert r.accounts["acc"].n == 1
    other = r.step(tx("new", DAY0 + 2 * HOUR), label=0)
    assert not other.replayed
    assert r.accounts["acc"].n == 2
    # The duplicate's label was queued twice but counted once (labels are idempotent).
    assert r.counterparties["m1"].counts(DAY0 + 2 * HOUR, 1) == (1, 1)
    assert other.features[CP] == [1.0, 1.0, 1.0, 1.0]
