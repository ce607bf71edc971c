"""The transaction simulator: determinism, validity, realism of each fraud pattern."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest

from models.simulator import (
    FRAUD_PATTERNS,
    INFLATED_DAYS,
    PATTERNS,
    SimulatedTx,
    Simulator,
    simulate_history,
)
from models.transaction import TX_TYPES, transaction_from_dict

START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def history() -> list[SimulatedTx]:
    return simulate_history(seed=3, n_accounts=2000, days=10, start_ms=START_MS)


@pytest.fixture(scope="module")
def profiles() -> Simulator:
    """A simulator with the same seed and population, to read account profiles."""
    return Simulator(seed=3, n_accounts=2000)


def account_index(rec: SimulatedTx) -> int:
    return int(rec.tx["account_id"].removeprefix("acc-"))


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    def take(seed: int) -> list[tuple[dict[str, object], int, str]]:
        stream = Simulator(seed=seed).events(START_MS, rate_per_s=500.0)
        return [(r.tx, r.label, r.pattern) for r in itertools.islice(stream, 5000)]

    first = take(11)
    assert first == take(11)
    assert first != take(12)
    small = simulate_history(seed=4, n_accounts=300, days=2, start_ms=START_MS)
    again = simulate_history(seed=4, n_accounts=300, days=2, start_ms=START_MS)
    assert [(r.tx, r.label) for r in small] == [(r.tx, r.label) for r in again]


def test_every_transaction_is_valid_and_consistent(history: list[SimulatedTx]) -> None:
    ids = set()
    for rec in history:
        tx = transaction_from_dict(rec.tx)  # raises on anything invalid
        assert tx.type in TX_TYPES
        assert tx.amount > 0
        assert "label" not in rec.tx and "pattern" not in rec.tx  # ground truth stays out
        assert rec.pattern in PATTERNS and rec.label == (rec.pattern != "legit")
        assert tx.balance_before is not None and tx.balance_after is not None
        sign = 1 if tx.type == "CASH_IN" else -1
        assert tx.balance_after == pytest.approx(tx.balance_before + sign * tx.amount, abs=0.006)
        assert tx.balance_after >= 0
        ids.add(tx.tx_id)
    assert len(ids) == len(history)
    accounts = {r.tx["account_id"] for r in history}
    assert len(accounts) > 1900 and all(a.startswith("acc-") for a in accounts)


def test_balances_chain_from_one_transaction_to_the_next(history: list[SimulatedTx]) -> None:
    last: dict[str, float] = {}
    pairs = breaks = 0
    for rec in history:
        account = rec.tx["account_id"]
        if account in last:
            pairs += 1
            breaks += abs(last[account] - rec.tx["balance_before"]) > 0.005
        last[account] = rec.tx["balance_after"]
    # Only unobserved income (a top-up before a purchase the balance cannot cover) breaks it.
    assert breaks / pairs < 0.05


def test_event_time_never_goes_back(history: list[SimulatedTx]) -> None:
    ts = [r.tx["ts"] for r in history]
    assert ts == sorted(ts)
    assert ts[0] >= START_MS and ts[-1] < START_MS + 10 * 24 * HOUR_MS
    stream = Simulator(seed=2).events(START_MS, 3000.0)
    live = [r.tx["ts"] for r in itertools.islice(stream, 60_000)]
    assert live == sorted(live)
    # The stream keeps its promised rate of event time (Poisson arrivals).
    assert (live[-1] - live[0]) / 1000 == pytest.approx(60_000 / 3000.0, rel=0.05)


@pytest.mark.parametrize("fraud_rate", [0.01, 0.03])
def test_fraud_rate_and_every_pattern_present(fraud_rate: float) -> None:
    records = simulate_history(
        seed=8, n_accounts=2000, days=10, start_ms=START_MS, fraud_rate=fraud_rate
    )
    labels = [r.label for r in records]
    rate = sum(labels) / len(labels)
    assert fraud_rate * 0.65 < rate < fraud_rate * 1.35
    by_pattern = Counter(r.pattern for r in records if r.label)
    for pattern in FRAUD_PATTERNS:
        # Each pattern contributes a real share of the fraud, not a token row.
        assert by_pattern[pattern] > 0.08 * sum(labels), by_pattern


def test_legit_usual_merchants_dominate(history: list[SimulatedTx], profiles: Simulator) -> None:
    usual: dict[int, set[str]] = {}
    at_usual = total = 0
    for rec in history:
        if rec.label or rec.tx["type"] not in ("PAYMENT", "CARD", "DEBIT"):
            continue
        a = account_index(rec)
        if a >= 2000:
            continue  # occasional accounts: too few transactions to have habits
        if a not in usual:
            usual[a] = set(profiles.profile(a)["usual_merchants"])
        total += 1
        at_usual += rec.tx["counterparty_id"] in usual[a]
    assert 0.8 < at_usual / total < 0.97  # mostly habitual, with some new merchants


def test_velocity_stays_low_at_high_rate() -> None:
    sim = Simulator(seed=5)
    rate = 5000.0
    regular_rate = rate * (1 - sim.occasional_share)
    assert sim.population(rate) * sim.tx_per_account_per_day / 86_400 >= regular_rate
    per_account = Counter(
        r.tx["account_id"]
        for r in itertools.islice(sim.events(START_MS, rate), 100_000)
        if r.label == 0
    )
    # 100k transactions in 20 s of event time: nobody pays 3 times in 20 seconds.
    assert max(per_account.values()) <= 3
    assert sum(1 for c in per_account.values() if c > 1) < 0.01 * len(per_account)


def test_velocity_per_day_stays_a_few_transactions() -> None:
    sim = Simulator(seed=6)
    assert sim.velocity_factor() < 3.0
    rate = 2.0
    day = list(itertools.islice(sim.events(START_MS, rate), int(rate * 86_400)))
    per_account = Counter(account_index(r) for r in day if r.label == 0)
    regular = {a: c for a, c in per_account.items() if a < sim.population(rate)}
    occasional = {a: c for a, c in per_account.items() if a >= sim.population(rate)}
    mean = sum(regular.values()) / len(regular)
    assert 3.0 < mean < 6.0  # about tx_per_account_per_day
    assert max(regular.values()) <= 30
    assert sum(occasional.values()) / len(day) == pytest.approx(sim.occasional_share, abs=0.02)
    # Occasional accounts are seen once (a few birthday coincidences in a pool of millions).
    assert sum(c == 1 for c in occasional.values()) / len(occasional) > 0.98


def test_card_testing_is_a_burst_of_small_amounts(
    history: list[SimulatedTx], profiles: Simulator
) -> None:
    small = defaultdict(list)
    for rec in history:
        if rec.pattern == "card_testing" and rec.tx["amount"] <= 5.0:
            small[rec.tx["account_id"]].append(rec)
    bursts = []
    for recs in small.values():
        current = [recs[0]]
        for rec in recs[1:]:
            if rec.tx["ts"] - current[-1].tx["ts"] > HOUR_MS:
                bursts.append(current)
                current = []
            current.append(rec)
        bursts.append(current)
    assert len(bursts) >= 10
    new_merchant = total = 0
    for burst in bursts:
        assert 5 <= len(burst) <= 20
        assert burst[-1].tx["ts"] - burst[0].tx["ts"] < 15 * 60_000
        assert all(0.5 <= r.tx["amount"] <= 5.0 and r.tx["type"] == "CARD" for r in burst)
        usual = set(profiles.profile(account_index(burst[0]))["usual_merchants"])
        new_merchant += sum(r.tx["counterparty_id"] not in usual for r in burst)
        total += len(burst)
    assert new_merchant / total > 0.8
    # Every burst ends with one large purchase on the same card.
    bigger = [r for r in history if r.pattern == "card_testing" and r.tx["amount"] > 5.0]
    assert len(bigger) == len(bursts)
    assert all(r.tx["amount"] >= 150.0 for r in bigger)
    tested = {b[0].tx["account_id"] for b in bursts}
    assert {r.tx["account_id"] for r in bigger} == tested


def test_account_takeover_drains_the_balance_to_a_new_payee(
    history: list[SimulatedTx], profiles: Simulator
) -> None:
    ato = [r for r in history if r.pattern == "account_takeover"]
    assert len(ato) > 20
    seen_cps: dict[str, set[str]] = defaultdict(set)
    own_devices: dict[str, set[str]] = defaultdict(set)
    last_by_account: dict[str, SimulatedTx] = {}
    own: list[SimulatedTx] = []
    phoned: list[SimulatedTx] = []
    stolen: list[SimulatedTx] = []
    for rec in history:
        tx = rec.tx
        if rec.pattern == "account_takeover":
            # A transfer to a mule the owner never paid.
            assert tx["counterparty_id"] not in seen_cps[tx["account_id"]]
            assert tx["counterparty_id"].startswith("cp-new-")
            assert tx["type"] == "TRANSFER"
            assert account_index(rec) < 2000  # a regular account, with a history
            # From the owner's own device (the one its profile and its payments name), by
            # phone (no device), or from one it never used.
            if "device_id" not in tx:
                assert tx["channel"] == "phone"
                phoned.append(rec)
            elif tx["device_id"] == profiles.profile(account_index(rec))["device_id"]:
                own.append(rec)
            else:
                assert tx["device_id"] not in own_devices[tx["account_id"]]
                stolen.append(rec)
            last_by_account[tx["account_id"]] = rec
        else:
            if "counterparty_id" in tx:
                seen_cps[tx["account_id"]].add(tx["counterparty_id"])
            if "device_id" in tx and rec.pattern == "legit":
                own_devices[tx["account_id"]].add(tx["device_id"])
                assert tx["device_id"] == profiles.profile(account_index(rec))["device_id"]
    # The last step of each takeover moves (nearly) all of the balance: 95-100 %.
    for rec in last_by_account.values():
        tx = rec.tx
        assert tx["amount"] >= 0.95 * tx["balance_before"] - 0.01
        assert tx["balance_after"] == pytest.approx(tx["balance_before"] - tx["amount"], abs=0.006)
    # About a third come from the owner's own device and a seventh by phone, at any hour;
    # a stolen login mostly at night.
    assert 0.15 < len(own) / len(ato) < 0.6
    assert 0.03 < len(phoned) / len(ato) < 0.35
    night = sum(1 for r in stolen if (r.tx["ts"] // HOUR_MS) % 24 < 6)
    assert night / len(stolen) > 0.6


def test_inflated_amounts_are_a_third_of_a_cards_payments_for_a_fortnight(
    history: list[SimulatedTx], profiles: Simulator
) -> None:
    inflated = [r for r in history if r.pattern == "inflated_amounts"]
    assert len(inflated) > 100
    cards = {r.tx["account_id"] for r in inflated}
    assert len(cards) > 20
    for rec in inflated:
        # The owner's kind of payment, at 3-8 times the usual amounts.
        assert rec.tx["type"] in ("PAYMENT", "CARD")
        typical = profiles.profile(account_index(rec))["typical_amount"]
        assert rec.tx["amount"] / typical > 0.5
    spans = defaultdict(list)
    for rec in inflated:
        spans[rec.tx["account_id"]].append(rec.tx["ts"])
    assert max(max(t) - min(t) for t in spans.values()) < INFLATED_DAYS * 24 * HOUR_MS
    # While a card is compromised, about a third of its card payments are the fraudster's.
    fraud = owner = 0
    for rec in history:
        a = rec.tx["account_id"]
        in_span = a in spans and min(spans[a]) <= rec.tx["ts"] <= max(spans[a])
        if in_span and rec.tx["type"] in ("PAYMENT", "CARD"):
            fraud += rec.label
            owner += 1 - rec.label
    assert 0.2 < fraud / (fraud + owner) < 0.5
    typical_ratio = sorted(
        r.tx["amount"] / profiles.profile(account_index(r))["typical_amount"] for r in inflated
    )
    assert 3.0 < typical_ratio[len(typical_ratio) // 2] < 8.0


def test_compromised_merchant_victims_share_a_merchant_visit(
    history: list[SimulatedTx],
) -> None:
    first_fraud: dict[str, int] = {}
    for rec in history:
        if rec.pattern == "compromised_merchant":
            first_fraud.setdefault(rec.tx["account_id"], rec.tx["ts"])
    assert len(first_fraud) >= 10
    visits: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for rec in history:
        a = rec.tx["account_id"]
        before_fraud = a in first_fraud and 0 <= first_fraud[a] - rec.tx["ts"] <= 3 * HOUR_MS
        if rec.label == 0 and rec.tx["type"] in ("PAYMENT", "CARD") and before_fraud:
            visits[a].append((rec.tx["counterparty_id"], rec.tx["ts"]))
    victims_per_merchant = Counter(m for vs in visits.values() for m in {m for m, _ in vs})
    shared = sum(1 for a in first_fraud if any(victims_per_merchant[m] >= 3 for m, _ in visits[a]))
    # Victims were defrauded after visiting the same (breached) merchant as other victims.
    assert shared / len(first_fraud) > 0.9
    # And every card that paid at a breached merchant during its breach was hit later. A
    # breach is a run of victim visits to one merchant (a merchant may be breached again).
    victim_visits: dict[str, list[int]] = defaultdict(list)
    for vs in visits.values():
        for m, ts in vs:
            if victims_per_merchant[m] >= 3:
                victim_visits[m].append(ts)
    windows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for m, times in victim_visits.items():
        times.sort()
        lo = times[0]
        for prev, ts in itertools.pairwise([*times, times[-1] + 3 * HOUR_MS]):
            if ts - prev > 2 * HOUR_MS:
                windows[m].append((lo, prev))
                lo = ts
    hit = spared = 0
    for rec in history:
        m, ts = rec.tx["counterparty_id"], rec.tx["ts"]
        if rec.tx["type"] not in ("PAYMENT", "CARD") or rec.label:
            continue
        if any(lo <= ts <= hi for lo, hi in windows.get(m, ())):
            a = rec.tx["account_id"]
            if a in first_fraud and ts < first_fraud[a]:
                hit += 1
            else:
                spared += 1
    assert hit >= 30
    assert spared / (hit + spared) < 0.05, (hit, spared)
