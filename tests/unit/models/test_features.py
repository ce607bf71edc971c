"""Per-account velocity features, checked against values worked out by hand.

Bucket semantics (models/features.py docstring): 1 h = the transaction's 5-minute bucket and
the 11 before it, 24 h = its hour bucket and the 23 before it, 7 d / 30 d = its UTC day bucket
and the 6 / 29 before it. Every feature describes the history *before* the transaction.

Calendar used below: 2024-03-01 is a Friday, 03-02 Saturday, 03-03 Sunday, 03-04 Monday.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from datetime import datetime

import pytest

from models.features import (
    BUCKET_1D_MS,
    BUCKET_1H_MS,
    BUCKET_5M_MS,
    FEATURE_NAMES,
    MAX_COUNTERPARTIES,
    N_FEATURES,
    SEEN_TX,
    SLOTS_1D,
    SLOTS_1H,
    SLOTS_5M,
    TYPE_CODES,
    AccountState,
    features_dict,
    is_replay,
    update_account,
)
from models.transaction import Transaction, transaction_from_dict

NAN = float("nan")
HOUR_S = 3600.0
DAY_S = 86400.0


def ms(iso: str) -> int:
    """Epoch milliseconds of an ISO timestamp with zone (independent of the code under test)."""
    return int(datetime.fromisoformat(iso).timestamp()) * 1000


def tx(
    tx_id: str,
    ts: str | int,
    amount: float,
    cp: str | None = None,
    **extra: object,
) -> Transaction:
    doc: dict[str, object] = {"tx_id": tx_id, "ts": ts, "account_id": "acc", "amount": amount}
    if cp is not None:
        doc["counterparty_id"] = cp
    doc.update(extra)
    return transaction_from_dict(doc)


def named(values: list[float]) -> dict[str, float]:
    assert len(values) == N_FEATURES
    return dict(zip(FEATURE_NAMES, values, strict=True))


def apply_all(
    txs: list[Transaction], state: AccountState | None = None
) -> tuple[list[dict[str, float]], AccountState]:
    out = []
    for t in txs:
        values, state = update_account(state, t)
        out.append(named(values))
    assert state is not None
    return out, state


def same(actual: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(actual)
    return actual == pytest.approx(expected, rel=1e-9, abs=1e-12)


def check(features: dict[str, float], expected: dict[str, float]) -> None:
    wrong = {k: (features[k], v) for k, v in expected.items() if not same(features[k], v)}
    assert not wrong, f"feature: (actual, expected) {wrong}"


# -- a worked sequence ------------------------------------------------------------------------

SEQUENCE = [
    tx("a", "2024-03-04T10:00:00Z", 100, "m1"),
    tx("b", "2024-03-04T10:20:00Z", 200, "m2"),
    tx("c", "2024-03-04T10:58:00Z", 300, "m1"),
    tx("d", "2024-03-04T12:30:00Z", 600),
    tx("e", "2024-03-05T10:30:00Z", 50, "m3"),
    tx("f", "2024-03-09T08:00:00Z", 10),
    tx("g", "2024-03-12T09:00:00Z", 20),
]

EXPECTED = [
    # a: first transaction of the account, no history at all.
    {
        "amount": 100, "log_amount": math.log(101),
        "count_1h": 0, "sum_1h": 0, "count_24h": 0, "sum_24h": 0,
        "count_7d": 0, "sum_7d": 0, "count_30d": 0, "sum_30d": 0,
        "account_tx_count": 0, "account_age_days": 0,
        "mean_amount": NAN, "std_amount": NAN, "amount_zscore": NAN, "amount_to_mean": NAN,
        "secs_since_prev": NAN, "distinct_cp_24h": 0, "new_counterparty": 1,
    },
    # b at 10:20: 5m bucket 10:20, 1 h window = buckets 09:25..10:20 -> a.
    # n=1, mean=100, std undefined (sample std needs 2), 200/100 = 2.
    # 20 min = 1200 s since a; age 1200/86400 days; m1 seen 20 min ago.
    {
        "count_1h": 1, "sum_1h": 100, "count_24h": 1, "sum_24h": 100,
        "count_7d": 1, "sum_7d": 100, "count_30d": 1, "sum_30d": 100,
        "account_tx_count": 1, "account_age_days": 1200 / DAY_S,
        "mean_amount": 100, "std_amount": NAN, "amount_zscore": NAN, "amount_to_mean": 2.0,
        "secs_since_prev": 1200, "distinct_cp_24h": 1, "new_counterparty": 1,
    },
    # c at 10:58: bucket 10:55, window 10:00..10:55 -> a, b (300).
    # n=2, mean=150, sample var = (50^2 + 50^2)/1 = 5000, z = 150/sqrt(5000).
    # 38 min = 2280 s since b; age 58 min; m1 and m2 in the last 24 h; m1 already seen.
    {
        "count_1h": 2, "sum_1h": 300, "count_24h": 2, "sum_24h": 300,
        "count_7d": 2, "sum_7d": 300, "count_30d": 2, "sum_30d": 300,
        "account_tx_count": 2, "account_age_days": 58 * 60 / DAY_S,
        "mean_amount": 150, "std_amount": math.sqrt(5000),
        "amount_zscore": 150 / math.sqrt(5000), "amount_to_mean": 2.0,
        "secs_since_prev": 2280, "distinct_cp_24h": 2, "new_counterparty": 0,
    },
    # d at 12:30: 1 h window 11:35..12:30 -> nothing; 24 h window 03-03 13h..03-04 12h ->
    # a, b, c (600). n=3, mean=200, var = (100^2 + 0 + 100^2)/2 = 10000, std=100,
    # z = (600-200)/100 = 4, 600/200 = 3. 1 h 32 min = 5520 s since c. No counterparty.
    {
        "count_1h": 0, "sum_1h": 0, "count_24h": 3, "sum_24h": 600,
        "count_7d": 3, "sum_7d": 600, "count_30d": 3, "sum_30d": 600,
        "account_tx_count": 3, "account_age_days": 2.5 / 24,
        "mean_amount": 200, "std_amount": 100, "amount_zscore": 4.0, "amount_to_mean": 3.0,
        "secs_since_prev": 5520, "distinct_cp_24h": 2, "new_counterparty": NAN,
    },
    # e at 03-05 10:30: 24 h window = hours 03-04 11h..03-05 10h -> only d (600).
    # 7 d = days 03-04..03-05 -> a..d (1200). n=4, mean=1200/4=300, deviations
    # -200,-100,0,300: var = (40000+10000+0+90000)/3 = 140000/3. z = (50-300)/std, 50/300.
    # 22 h since d = 79200 s; age 1 day 30 min. Counterparties seen after 03-04 10:30:
    # m1 (last at 10:58) yes, m2 (10:20) no -> 1. m3 is new.
    {
        "count_1h": 0, "sum_1h": 0, "count_24h": 1, "sum_24h": 600,
        "count_7d": 4, "sum_7d": 1200, "count_30d": 4, "sum_30d": 1200,
        "account_tx_count": 4, "account_age_days": 1 + 0.5 / 24,
        "mean_amount": 300, "std_amount": math.sqrt(140000 / 3),
        "amount_zscore": -250 / math.sqrt(140000 / 3), "amount_to_mean": 50 / 300,
        "secs_since_prev": 22 * HOUR_S, "distinct_cp_24h": 1, "new_counterparty": 1,
    },
    # f at 03-09 08:00 (Saturday): 24 h empty; 7 d = days 03-03..03-09 -> a..e (1250).
    # n=5, mean=250, deviations -150,-50,50,350,-200: var = 190000/4 = 47500.
    # since e: 3 d 21 h 30 min = 336600 s; age 4 d 22 h; m3 last seen 03-05 -> 0 distinct.
    {
        "count_1h": 0, "sum_1h": 0, "count_24h": 0, "sum_24h": 0,
        "count_7d": 5, "sum_7d": 1250, "count_30d": 5, "sum_30d": 1250,
        "account_tx_count": 5, "account_age_days": 4 + 22 / 24,
        "mean_amount": 250, "std_amount": math.sqrt(47500),
        "amount_zscore": -240 / math.sqrt(47500), "amount_to_mean": 10 / 250,
        "secs_since_prev": 336600, "distinct_cp_24h": 0, "new_counterparty": NAN,
        "hour_of_day": 8, "is_weekend": 1, "is_night": 0,
    },
    # g at 03-12 09:00: 7 d = days 03-06..03-12 -> only f (10); 30 d -> all six (1260).
    # n=6, mean = 1260/6 = 210.
    {
        "count_1h": 0, "sum_1h": 0, "count_24h": 0, "sum_24h": 0,
        "count_7d": 1, "sum_7d": 10, "count_30d": 6, "sum_30d": 1260,
        "account_tx_count": 6, "mean_amount": 210, "amount_to_mean": 20 / 210,
        "secs_since_prev": 3 * DAY_S + HOUR_S, "account_age_days": 7 + 23 / 24,
        "hour_of_day": 9, "is_weekend": 0,
    },
]  # fmt: skip


@pytest.mark.parametrize("step", range(len(SEQUENCE)), ids=[t.tx_id for t in SEQUENCE])
def test_worked_sequence(step: int) -> None:
    features, _ = apply_all(SEQUENCE[: step + 1])
    check(features[step], EXPECTED[step])


def test_worked_sequence_final_state() -> None:
    _, state = apply_all(SEQUENCE)
    assert state.n == 7
    assert state.mean == pytest.approx(1280 / 7)
    assert state.first_ts_ms == ms("2024-03-04T10:00:00+00:00")
    assert state.last_ts_ms == ms("2024-03-12T09:00:00+00:00")
    # The state's own window view at g's time includes g itself.
    view = state.window(ms("2024-03-12T09:00:00+00:00"))
    assert view["count_7d"] == 2
    assert view["sum_7d"] == 30
    assert view["count_30d"] == 7
    assert view["sum_30d"] == 1280


# -- window boundaries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prev", "cur", "name", "expected"),
    [
        # 1 h: window of the 10:55 bucket starts at the 10:00 bucket.
        ("2024-03-04T10:00:00Z", "2024-03-04T10:59:59Z", "count_1h", 1),
        # 11:00 bucket: window 10:05..11:00, the 10:00 bucket is out (only 60 min later).
        ("2024-03-04T10:00:00Z", "2024-03-04T11:00:00Z", "count_1h", 0),
        # 10:04:59 is in the 10:00 bucket too, so it is out after 55 min and 1 s.
        ("2024-03-04T10:04:59Z", "2024-03-04T11:00:00Z", "count_1h", 0),
        # 10:05 bucket is in the window of 11:04:59 (bucket 11:00) although ~60 min apart.
        ("2024-03-04T10:05:00Z", "2024-03-04T11:04:59Z", "count_1h", 1),
        # 24 h: hour 10 of 03-04 is the oldest hour in the window of 03-05 09h.
        ("2024-03-04T10:30:00Z", "2024-03-05T09:59:59Z", "count_24h", 1),
        ("2024-03-04T10:30:00Z", "2024-03-05T10:00:00Z", "count_24h", 0),
        ("2024-03-04T10:59:59Z", "2024-03-05T10:00:00Z", "count_24h", 0),
        # 7 d: day D = 03-04; D+6 = 03-10 is in, D+7 = 03-11 is out (but in 30 d).
        ("2024-03-04T23:00:00Z", "2024-03-10T23:59:59Z", "count_7d", 1),
        ("2024-03-04T23:00:00Z", "2024-03-11T00:00:00Z", "count_7d", 0),
        ("2024-03-04T23:00:00Z", "2024-03-11T00:00:00Z", "count_30d", 1),
        # 30 d: D+29 = 04-02 is in, D+30 = 04-03 is out.
        ("2024-03-04T00:00:00Z", "2024-04-02T23:59:59Z", "count_30d", 1),
        ("2024-03-04T23:59:59Z", "2024-04-03T00:00:00Z", "count_30d", 0),
        # Day buckets are UTC days: 23:00-05:00 local on 03-04 is 03-05 04:00 UTC.
        ("2024-03-04T23:00:00-05:00", "2024-03-11T23:00:00Z", "count_7d", 1),
    ],
)
def test_window_boundaries(prev: str, cur: str, name: str, expected: int) -> None:
    features, _ = apply_all([tx("p", prev, 40), tx("c", cur, 1)])
    assert features[1][name] == expected
    sum_name = name.replace("count", "sum")
    assert features[1][sum_name] == 40 * expected


# -- single-transaction features --------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "hour", "night", "weekend"),
    [
        ("2024-03-04T23:30:00-05:00", 23, 0, 0),  # UTC: Tue 04:30 (night) -> local wins
        ("2024-03-04T01:00:00+03:00", 1, 1, 0),  # UTC: Sun 22:00 (weekend) -> local Monday
        ("2024-03-01T22:00:00-05:00", 22, 0, 0),  # UTC: Sat 03:00 -> local Friday evening
        ("2024-03-03T20:00:00-10:00", 20, 0, 1),  # UTC: Mon 06:00 -> local Sunday
        ("2024-03-02T00:00:00Z", 0, 1, 1),  # Saturday midnight
        ("2024-03-03T23:59:59Z", 23, 0, 1),  # last second of Sunday
        ("2024-03-04T05:59:59Z", 5, 1, 0),  # last night second
        ("2024-03-04T06:00:00Z", 6, 0, 0),  # first day second
        ("2024-03-04T12:00:00+05:30", 12, 0, 0),  # half-hour zone
    ],
)
def test_local_time_features(ts: str, hour: int, night: int, weekend: int) -> None:
    features, _ = apply_all([tx("t", ts, 1)])
    assert features[0]["hour_of_day"] == hour
    assert features[0]["is_night"] == night
    assert features[0]["is_weekend"] == weekend


@pytest.mark.parametrize(
    ("before", "after", "amount", "drain", "to_balance"),
    [
        (1000, 250, 750, 0.75, 0.75),  # (1000-250)/1000, 750/1000
        (1000, 0, 1000, 1.0, 1.0),  # account emptied
        (200, 300, 50, -0.5, 0.25),  # balance grew: (200-300)/200
        (1000, None, 100, NAN, 0.1),  # no after balance: no drain, still 100/1000
        (0, 0, 10, NAN, NAN),  # no positive balance: both undefined
        (None, 500, 10, NAN, NAN),
        (-50, -60, 10, NAN, NAN),
    ],
)
def test_balance_features(
    before: float | None, after: float | None, amount: float, drain: float, to_balance: float
) -> None:
    extra: dict[str, object] = {
        k: v for k, v in (("balance_before", before), ("balance_after", after)) if v is not None
    }
    features, _ = apply_all([tx("t", "2024-03-04T10:00:00Z", amount, None, **extra)])
    check(features[0], {"balance_drain_ratio": drain, "amount_to_balance": to_balance})


@pytest.mark.parametrize(
    ("tx_type", "code"),
    [
        ("PAYMENT", 0),
        ("TRANSFER", 1),
        ("CASH_OUT", 2),
        ("CASH_IN", 3),
        ("DEBIT", 4),
        ("card", 5),
        (None, NAN),
    ],
)
def test_type_code(tx_type: str | None, code: float) -> None:
    extra = {"type": tx_type} if tx_type is not None else {}
    features, _ = apply_all([tx("t", "2024-03-04T10:00:00Z", 5, **extra)])
    check(features[0], {"type_code": code})


@pytest.mark.parametrize(
    ("amount", "log_amount"), [(0, 0.0), (math.e - 1, 1.0), (99, math.log(100))]
)
def test_amount_and_log_amount(amount: float, log_amount: float) -> None:
    features, _ = apply_all([tx("t", "2024-03-04T10:00:00Z", amount)])
    check(features[0], {"amount": amount, "log_amount": log_amount})


def test_new_counterparty_and_distinct_count() -> None:
    features, _ = apply_all(
        [
            tx("1", "2024-03-04T10:00:00Z", 1, "A"),  # first sight of A
            tx("2", "2024-03-04T10:01:00Z", 1, "A"),  # A again
            tx("3", "2024-03-04T10:02:00Z", 1, "B"),  # first sight of B
            tx("4", "2024-03-04T10:03:00Z", 1),  # no counterparty
            tx("5", "2024-03-04T10:04:00Z", 1, "B"),
            # 03-05 10:01:30: A (last 10:01) is more than 24 h ago, B (10:04) is not.
            tx("6", "2024-03-05T10:01:30Z", 1, "A"),
        ]
    )
    assert [f["distinct_cp_24h"] for f in features] == [0, 1, 1, 2, 2, 1]
    new = [f["new_counterparty"] for f in features]
    assert new[:3] == [1, 0, 1]
    assert math.isnan(new[3])
    # A was seen more than 24 h ago, but it is still a known counterparty.
    assert new[4:] == [0, 0]


def test_zero_std_uses_the_floor_for_the_zscore() -> None:
    # 100, 100 -> std 0; the deviation floor is 5% of the mean = 5: z = (250-100)/5 = 30.
    features, _ = apply_all(
        [
            tx("1", "2024-03-04T10:00:00Z", 100),
            tx("2", "2024-03-04T10:01:00Z", 100),
            tx("3", "2024-03-04T10:02:00Z", 250),
        ]
    )
    check(features[2], {"std_amount": 0.0, "amount_zscore": 30.0, "amount_to_mean": 2.5})


def test_new_device_and_foreign_country() -> None:
    # d1 first (new), d1 again (known), d2 (new), no device (NaN); home country is the first
    # one named (US): NaN before it is known, then 0 for US and 1 for FR.
    seq = [
        tx("1", "2024-03-04T10:00:00Z", 10, device_id="d1", country="US"),
        tx("2", "2024-03-04T10:01:00Z", 10, device_id="d1", country="US"),
        tx("3", "2024-03-04T10:02:00Z", 10, device_id="d2", country="FR"),
        tx("4", "2024-03-04T10:03:00Z", 10),
    ]
    features, state = apply_all(seq)
    assert [f["new_device"] for f in features[:3]] == [1.0, 0.0, 1.0]
    assert math.isnan(features[3]["new_device"])
    assert math.isnan(features[0]["foreign_country"])
    assert [f["foreign_country"] for f in features[1:3]] == [0.0, 1.0]
    assert math.isnan(features[3]["foreign_country"])
    assert len(state.devices) == 2


def test_zero_mean_gives_no_amount_to_mean() -> None:
    features, _ = apply_all(
        [tx("1", "2024-03-04T10:00:00Z", 0), tx("2", "2024-03-04T10:01:00Z", 5)]
    )
    check(features[1], {"mean_amount": 0.0, "amount_to_mean": NAN})


# -- idempotency ------------------------------------------------------------------------------


def test_same_tx_id_twice_is_not_counted_again() -> None:
    a = tx("a", "2024-03-04T10:00:00Z", 100, "m1")
    b = tx("b", "2024-03-04T10:10:00Z", 50, "m2")
    _, state = apply_all([a, b])
    snapshot = state.to_bytes()
    assert is_replay(state, a)
    _, state = update_account(state, a)
    _, state = update_account(state, b)
    assert state.to_bytes() == snapshot
    assert state.n == 2
    # The next transaction sees a and b once each.
    features, _ = apply_all([tx("c", "2024-03-04T10:20:00Z", 1)], state)
    check(features[0], {"count_1h": 2, "sum_1h": 150, "account_tx_count": 2, "mean_amount": 75})


def test_replay_with_different_payload_same_id_is_ignored() -> None:
    _, state = apply_all([tx("a", "2024-03-04T10:00:00Z", 100)])
    snapshot = state.to_bytes()
    _, state = update_account(state, tx("a", "2024-03-04T11:00:00Z", 9999))
    assert state.to_bytes() == snapshot


# -- state serialization and bounds -----------------------------------------------------------


def test_state_round_trips_exactly() -> None:
    state = AccountState()
    for t in SEQUENCE:
        _, state = update_account(state, t)
    data = state.to_bytes()
    copy = AccountState.from_bytes(data)
    assert copy == state
    assert copy.to_bytes() == data
    nxt = tx("h", "2024-03-12T09:30:00Z", 33.3, "m9")
    f1, s1 = update_account(state, nxt)
    f2, s2 = update_account(copy, nxt)
    assert json.dumps(f1) == json.dumps(f2)  # NaN-safe exact comparison
    assert s1.to_bytes() == s2.to_bytes()


def test_empty_state_round_trips() -> None:
    state = AccountState()
    assert AccountState.from_bytes(state.to_bytes()) == state


def test_state_of_other_format_is_refused() -> None:
    data = json.dumps([999, *json.loads(AccountState().to_bytes())[1:]]).encode()
    with pytest.raises(ValueError, match="format"):
        AccountState.from_bytes(data)


def _brute_window(idx: list[int], prefix: list[float], i: int, cur: int, slots: int):
    """Count and sum of the first ``i`` transactions whose bucket is in (cur-slots, cur]."""
    lo = bisect.bisect_right(idx, cur - slots, 0, i)
    return i - lo, prefix[i] - prefix[lo]


def test_state_stays_bounded_and_windows_match_brute_force() -> None:
    rng = random.Random(20240304)
    start = ms("2024-01-01T00:00:00+00:00")
    times = sorted(start + rng.randrange(100 * BUCKET_1D_MS) for _ in range(5000))
    amounts = [round(rng.uniform(0, 5000), 2) for _ in times]
    prefix = [0.0]
    for a in amounts:
        prefix.append(prefix[-1] + a)
    idx5 = [t // BUCKET_5M_MS for t in times]
    idxh = [t // BUCKET_1H_MS for t in times]
    idxd = [t // BUCKET_1D_MS for t in times]

    state = AccountState()
    max_size = 0
    exact_cos = exact_sin = 0.0  # the clock sums without the state's rounding
    for i, (ts, amount) in enumerate(zip(times, amounts, strict=True)):
        kind = rng.choice([*TYPE_CODES, None])
        extra = {"type": kind} if kind is not None else {}
        t = tx(f"tx-{i}", ts, amount, f"cp-{rng.randrange(500)}", **extra)
        values, state = update_account(state, t)
        f = named(values)
        for name, idx, slots in (
            ("1h", idx5, SLOTS_5M),
            ("24h", idxh, SLOTS_1H),
            ("7d", idxd, 7),
            ("30d", idxd, SLOTS_1D),
        ):
            count, total = _brute_window(idx, prefix, i, idx[i], slots)
            assert f[f"count_{name}"] == count, (i, name)
            assert f[f"sum_{name}"] == pytest.approx(total, rel=1e-9, abs=1e-6), (i, name)
        assert f["distinct_cp_24h"] <= MAX_COUNTERPARTIES
        assert len(state.b5m) <= SLOTS_5M
        assert len(state.b1h) <= SLOTS_1H
        assert len(state.b1d) <= SLOTS_1D
        assert len(state.cps) <= MAX_COUNTERPARTIES
        assert len(state.seen) <= SEEN_TX
        assert len(state.dmax) <= SLOTS_1D
        assert len(state.clock) == 3
        assert len(state.types) <= len(TYPE_CODES)
        lo = bisect.bisect_right(idxd, idxd[i] - SLOTS_1D, 0, i)
        peak = max(amounts[lo:i], default=0.0)
        expected_to_max = amount / peak if peak > 0 else NAN
        assert same(f["amount_to_max_30d"], expected_to_max), i
        angle = 2 * math.pi * (ts // 1000 % 86_400) / 86_400
        if i:
            exact = 1 - (math.cos(angle) * exact_cos + math.sin(angle) * exact_sin) / i
            assert f["hour_unusual"] == pytest.approx(exact, abs=0.002), i
        exact_cos += math.cos(angle)
        exact_sin += math.sin(angle)
        max_size = max(max_size, len(state.to_bytes()))

    assert state.n == 5000
    assert state.mean == pytest.approx(prefix[-1] / 5000)
    mean = prefix[-1] / 5000
    var = sum((a - mean) ** 2 for a in amounts) / 4999
    assert state.m2 / (state.n - 1) == pytest.approx(var, rel=1e-9)
    # 66 buckets, 64 counterparties and 32 ids: a few KB at most.
    assert max_size < 6 * 1024
    assert AccountState.from_bytes(state.to_bytes()) == state


# -- out-of-order events and expiry ----------------------------------------------------------


def test_late_event_lands_in_its_own_5_minute_bucket() -> None:
    features, state = apply_all(
        [
            tx("x1", "2024-03-04T10:30:00Z", 100),
            tx("x2", "2024-03-04T10:50:00Z", 200),
            tx("x3", "2024-03-04T10:10:00Z", 40),  # late
        ]
    )
    # x3's 1 h window (buckets 09:15..10:10) holds nothing before it; x1 and x2 are later.
    # Its hour bucket (10h) holds x1 and x2, so they count in the 24 h window.
    check(
        features[2],
        {"count_1h": 0, "sum_1h": 0, "count_24h": 2, "sum_24h": 300, "secs_since_prev": 0.0},
    )
    assert [b[0] for b in state.b5m] == [
        ms(f"2024-03-04T10:{m}:00+00:00") // BUCKET_5M_MS for m in (10, 30, 50)
    ]
    assert state.last_ts_ms == ms("2024-03-04T10:50:00+00:00")
    # 10:55 bucket: window 10:00..10:55 holds all three.
    features, _ = apply_all([tx("x4", "2024-03-04T10:55:00Z", 1)], state)
    check(features[0], {"count_1h": 3, "sum_1h": 340})


def test_late_event_lands_in_its_own_hour_bucket() -> None:
    _, state = apply_all(
        [tx("y1", "2024-03-04T12:00:00Z", 100), tx("y2", "2024-03-04T09:30:00Z", 7)]
    )
    assert [b[0] for b in state.b1h] == [
        ms("2024-03-04T09:00:00+00:00") // BUCKET_1H_MS,
        ms("2024-03-04T12:00:00+00:00") // BUCKET_1H_MS,
    ]
    # 24 h window of 03-05 09h: 03-04 10h..03-05 09h -> y1 only (y2 was at 09:30).
    features, _ = apply_all([tx("y3", "2024-03-05T09:45:00Z", 1)], state)
    check(features[0], {"count_24h": 1, "sum_24h": 100, "count_7d": 2, "sum_7d": 107})


def test_late_event_lands_in_its_own_day_bucket() -> None:
    _, state = apply_all(
        [tx("z1", "2024-03-10T12:00:00Z", 100), tx("z2", "2024-03-02T12:00:00Z", 5)]
    )
    # 7 d window of 03-11: 03-05..03-11 -> z1 only; 30 d -> both.
    features, state = apply_all([tx("z3", "2024-03-11T12:00:00Z", 1)], state)
    check(features[0], {"count_7d": 1, "sum_7d": 100, "count_30d": 2, "sum_30d": 105})
    # The account's age counts from the earliest event, even if it arrived late.
    assert state.first_ts_ms == ms("2024-03-02T12:00:00+00:00")


def test_buckets_older_than_the_window_are_dropped() -> None:
    _, state = apply_all([tx("w1", "2024-03-04T10:00:00Z", 1), tx("w2", "2024-03-04T10:01:00Z", 2)])
    assert (len(state.b5m), len(state.b1h), len(state.b1d)) == (1, 1, 1)
    assert state.b5m[0][1:] == [2, 3]
    # One hour later: the 10:00 5-minute bucket is out of the 12-slot 1 h window.
    _, state = apply_all([tx("w3", "2024-03-04T11:00:00Z", 4)], state)
    assert [b[0] for b in state.b5m] == [ms("2024-03-04T11:00:00+00:00") // BUCKET_5M_MS]
    assert len(state.b1h) == 2
    # 32 days later every bucket of 03-04 is out of every window.
    features, state = apply_all([tx("w4", "2024-04-05T10:00:00Z", 8)], state)
    check(features[0], {"count_30d": 0, "count_7d": 0, "count_24h": 0, "account_tx_count": 3})
    day = ms("2024-04-05T10:00:00+00:00") // BUCKET_1D_MS
    assert [b[0] for b in state.b1d] == [day]
    assert len(state.b5m) == len(state.b1h) == 1
    # A late event older than the whole window is not kept in any bucket.
    _, state = apply_all([tx("w5", "2024-03-04T10:02:00Z", 16)], state)
    assert [b[0] for b in state.b1d] == [day]
    assert len(state.b5m) == len(state.b1h) == 1
    assert state.n == 5


# -- features_dict ----------------------------------------------------------------------------


def test_features_dict_maps_nan_to_none() -> None:
    values, _ = update_account(None, tx("a", "2024-03-04T10:00:00Z", 100, "m1"))
    named_values = features_dict(values)
    assert list(named_values) == list(FEATURE_NAMES)
    for name, value in zip(FEATURE_NAMES, values, strict=True):
        if math.isnan(value):
            assert named_values[name] is None
        else:
            assert named_values[name] == value
    for name in ("mean_amount", "std_amount", "amount_zscore", "secs_since_prev"):
        assert named_values[name] is None
    assert named_values["amount"] == 100
    # The dict is valid strict JSON.
    json.dumps(named_values, allow_nan=False)


def test_features_dict_refuses_wrong_length() -> None:
    with pytest.raises(ValueError):
        features_dict([0.0] * (N_FEATURES - 1))


def test_ratios_are_capped_so_no_feature_is_infinite_as_float32() -> None:
    # A balance of 1e-300 and a mean of 5e-324 are valid input: the ratios would be
    # infinite, and the model reads float32 (max 3.4e38).
    import numpy as np

    from models.features import RATIO_CAP

    first = tx("t1", "2024-03-02T10:00:00Z", 5e-324)
    second = tx("t2", "2024-03-02T11:00:00Z", 1e12, balance_before=1e-300, balance_after=-1e12)
    rows, _ = apply_all([first, second])
    f = rows[1]
    assert f["amount_to_mean"] == RATIO_CAP
    assert f["amount_to_balance"] == RATIO_CAP
    assert f["balance_drain_ratio"] == RATIO_CAP
    assert not np.isinf(np.asarray(list(f.values()), dtype=np.float32)).any()


def test_capped_ratios_keep_missing_as_nan_and_small_values_exact() -> None:
    rows, _ = apply_all(
        [
            tx("t1", "2024-03-02T10:00:00Z", 100.0),
            tx("t2", "2024-03-02T11:00:00Z", 50.0, balance_before=200.0, balance_after=150.0),
        ]
    )
    assert math.isnan(rows[0]["amount_to_mean"])
    assert rows[1]["amount_to_mean"] == 0.5
    assert rows[1]["amount_to_balance"] == 0.25
    assert rows[1]["balance_drain_ratio"] == 0.25


# -- account-relative features (format 5) ----------------------------------------------------

RELATIVE = [
    tx("r1", "2024-03-04T10:00:00Z", 100, "m1", type="CARD"),
    tx("r2", "2024-03-04T16:00:00Z", 300, "m2", type="CARD"),
    tx("r3", "2024-03-05T10:00:00Z", 50, "m1", type="TRANSFER"),
    tx("r4", "2024-03-05T10:30:00Z", 600, "m1", type="CARD"),
    tx("r5", "2024-03-05T11:00:00Z", 5),
]


def _unusual(at_h: float, past_h: list[float]) -> float:
    """Mean ``1 - cos`` of the time-of-day angles between ``at_h`` and each of ``past_h``."""
    return sum(1 - math.cos(2 * math.pi * (at_h - h) / 24) for h in past_h) / len(past_h)


RELATIVE_EXPECTED: list[dict[str, float]] = [
    # r1: no history: every ratio is missing; m1 is new (0 days known).
    {
        "amount_to_avg_24h": NAN, "amount_to_avg_7d": NAN, "amount_to_avg_30d": NAN,
        "amount_to_max_30d": NAN, "days_since_first_cp": 0, "count_1h_to_usual": NAN,
        "hour_unusual": NAN, "amount_to_type_mean": NAN,
    },
    # r2, same day 16:00: every window holds r1 (100); nothing in the last hour against one
    # transaction in 30 days; six hours from r1 is a quarter turn: 1 - cos(pi/2) = 1.
    {
        "amount_to_avg_24h": 3, "amount_to_avg_7d": 3, "amount_to_avg_30d": 3,
        "amount_to_max_30d": 3, "days_since_first_cp": 0, "count_1h_to_usual": 0,
        "hour_unusual": 1, "amount_to_type_mean": 3,
    },
    # r3 on 03-05 10:00: 24 h = hours 03-04 11h..03-05 10h -> r2 only (300); 7/30 d -> r1, r2
    # (mean 200, largest 300). m1 first paid a day ago. Same time as r1 (0), 6 h from r2 (1).
    # First TRANSFER: no mean of its type yet.
    {
        "amount_to_avg_24h": 50 / 300, "amount_to_avg_7d": 0.25, "amount_to_avg_30d": 0.25,
        "amount_to_max_30d": 50 / 300, "days_since_first_cp": 1, "count_1h_to_usual": 0,
        "hour_unusual": 0.5, "amount_to_type_mean": NAN,
    },
    # r4 at 10:30: 24 h -> r2, r3 (mean 175); 7 d -> r1..r3 (mean 150, largest 300). One in
    # the last hour (r3) against 3 in 30 days over 24.5 active hours. CARD mean (100+300)/2.
    {
        "amount_to_avg_24h": 600 / 175, "amount_to_avg_7d": 4, "amount_to_avg_30d": 4,
        "amount_to_max_30d": 2, "days_since_first_cp": 24.5 / 24,
        "count_1h_to_usual": 1 * 24.5 / 3,
        "hour_unusual": _unusual(10.5, [10, 16, 10]), "amount_to_type_mean": 3,
    },
    # r5 at 11:00, no counterparty, no type: the 1 h window (10:05..11:00 buckets) holds r4
    # only (r3 at 10:00 left it), 4 in 30 days over 25 hours; largest so far 600.
    {
        "amount_to_avg_24h": 5 / (950 / 3), "amount_to_avg_7d": 5 / 262.5,
        "amount_to_max_30d": 5 / 600, "days_since_first_cp": NAN,
        "count_1h_to_usual": 1 * 25 / 4,
        "hour_unusual": _unusual(11, [10, 16, 10, 10.5]), "amount_to_type_mean": NAN,
    },
]  # fmt: skip


@pytest.mark.parametrize("step", range(len(RELATIVE)), ids=[t.tx_id for t in RELATIVE])
def test_account_relative_features_worked_by_hand(step: int) -> None:
    features, _ = apply_all(RELATIVE[: step + 1])
    expected = dict(RELATIVE_EXPECTED[step])
    # The clock sums are stored to 3 decimals, so hour_unusual is within a few thousandths.
    unusual = expected.pop("hour_unusual")
    check(features[step], expected)
    if math.isnan(unusual):
        assert math.isnan(features[step]["hour_unusual"])
    else:
        assert features[step]["hour_unusual"] == pytest.approx(unusual, abs=0.002)


def test_new_feature_names_are_appended_after_the_format_4_ones() -> None:
    assert FEATURE_NAMES[:31][-1] == "cp_frauds_30d"
    assert FEATURE_NAMES[31:] == (
        "amount_to_avg_24h",
        "amount_to_avg_7d",
        "amount_to_avg_30d",
        "amount_to_max_30d",
        "days_since_first_cp",
        "count_1h_to_usual",
        "hour_unusual",
        "amount_to_type_mean",
    )


def test_a_replayed_transaction_moves_no_account_relative_history() -> None:
    _, state = apply_all(RELATIVE[:4])
    snapshot = (state.dmax, state.clock, state.types, state.cps)
    before = json.dumps(snapshot)
    values, state = update_account(state, RELATIVE[3])
    assert json.dumps((state.dmax, state.clock, state.types, state.cps)) == before
    # Scored again against the state that already holds it: r4 is its own 30-day peak.
    assert named(values)["amount_to_max_30d"] == 1.0


def test_first_seen_of_a_counterparty_goes_back_for_a_late_event() -> None:
    _, state = apply_all(
        [tx("a", "2024-03-10T12:00:00Z", 1, "m"), tx("b", "2024-03-08T12:00:00Z", 1, "m")]
    )
    # Stored as last seen and how long it had been known by then (2 days), not as two times.
    assert [entry[1:] for entry in state.cps] == [[ms("2024-03-10T12:00:00+00:00"), 2 * 86_400_000]]
    features, _ = apply_all([tx("c", "2024-03-11T12:00:00Z", 1, "m")], state)
    assert features[0]["days_since_first_cp"] == 3.0


def test_account_takeover_drain_stands_out_against_the_accounts_own_history() -> None:
    """Issue 15: twenty days of small card payments, then the whole balance to a new payee."""
    rng = random.Random(15)
    start = ms("2024-03-01T00:00:00+00:00")
    balance = 11_000.0
    history = []
    for day in range(20):
        for k in range(2):
            amount = round(rng.uniform(15, 80), 2)
            at = start + day * BUCKET_1D_MS + (9 + 8 * k) * BUCKET_1H_MS + rng.randrange(3600_000)
            history.append(
                tx(f"h{day}-{k}", at, amount, f"shop-{rng.randrange(6)}", type="CARD",
                   balance_before=balance, balance_after=balance - amount)
            )  # fmt: skip
            balance -= amount
    _, state = apply_all(history)
    balance = 9_800.0
    drain = tx(
        "drain",
        start + 20 * BUCKET_1D_MS + 3 * BUCKET_1H_MS,
        balance,
        "payee-never-seen",
        type="TRANSFER",
        balance_before=balance,
        balance_after=0.0,
    )
    features, _ = apply_all([drain], state)
    f = features[0]
    assert f["amount_to_avg_30d"] > 100  # its payments averaged under 80
    assert f["amount_to_avg_7d"] > 100
    assert f["amount_to_max_30d"] > 100
    assert f["amount_to_balance"] == 1.0
    assert f["balance_drain_ratio"] == 1.0
    assert f["new_counterparty"] == 1.0
    assert f["days_since_first_cp"] == 0.0
    assert math.isnan(f["amount_to_type_mean"])  # its first transfer ever
    assert f["hour_unusual"] > 1.0  # 03:00, far from its 09:00-18:00 habit


def _as_format(state: AccountState, fmt: int) -> bytes:
    """Return ``state`` as an older format wrote it: counterparty pairs, no new histories."""
    v = json.loads(state.to_bytes())
    v[0] = fmt
    v[9] = [entry[:2] for entry in v[9]]  # counterparties
    return json.dumps(v[:15] if fmt == 4 else v[:14]).encode()


@pytest.mark.parametrize("fmt", [3, 4])
def test_an_older_state_reads_with_empty_account_relative_histories(fmt: int) -> None:
    _, state = apply_all(SEQUENCE)
    old = AccountState.from_bytes(_as_format(state, fmt))
    assert (old.dmax, old.clock, old.types) == ([], [], [])
    assert (old.n, old.mean, old.b1d, old.seen) == (state.n, state.mean, state.b1d, state.seen)
    # A known counterparty counts as first seen when it was last seen.
    assert old.cps == [[key, last, 0] for key, last, _ in state.cps]
    assert old.offsets == {}
    features, new = apply_all([tx("h", "2024-03-12T10:00:00Z", 40, "m1", type="CARD")], old)
    f = features[0]
    check(f, {"count_30d": 7, "new_counterparty": 0, "amount_to_max_30d": NAN})
    assert f["days_since_first_cp"] > 0  # m1 last seen 03-04 10:58
    assert math.isnan(f["hour_unusual"])
    assert json.loads(new.to_bytes())[0] == 5
    assert AccountState.from_bytes(new.to_bytes()) == new
