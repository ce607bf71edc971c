"""The counterparty-risk features of ``update_account``, checked against hand-computed values."""

from __future__ import annotations

import math

from models.counterparty_risk import DAY_MS, RISK_FEATURE_NAMES, CounterpartyRisk, apply_label
from models.features import FEATURE_NAMES, N_FEATURES, features_dict, update_account
from models.transaction import Transaction, transaction_from_dict

#: 2024-03-01T00:00:00Z.
DAY0 = 1_709_251_200_000
#: The four risk features sit together; the account-relative features come after them.
_CP0 = FEATURE_NAMES.index(RISK_FEATURE_NAMES[0])
CP = slice(_CP0, _CP0 + 4)


def at(day: int, hour: int = 12) -> int:
    return DAY0 + day * DAY_MS + hour * 3_600_000


def tx(tx_id: str, ts: int, cp: str | None = "merchant-1", account: str = "acc") -> Transaction:
    doc: dict[str, object] = {"tx_id": tx_id, "ts": ts, "account_id": account, "amount": 10.0}
    if cp is not None:
        doc["counterparty_id"] = cp
    return transaction_from_dict(doc)


def risk_of(labels: list[tuple[str, bool, int]]) -> CounterpartyRisk:
    """Risk after labels ``(tx_id, fraud, arrival ms)``."""
    risk = None
    for tx_id, fraud, ts in labels:
        risk, _ = apply_label(risk, tx_id, fraud, ts)
    assert risk is not None
    return risk


def test_feature_names_hold_the_four_counterparty_features_together() -> None:
    assert FEATURE_NAMES[CP] == RISK_FEATURE_NAMES
    assert RISK_FEATURE_NAMES == (
        "cp_fraud_rate_1d",
        "cp_fraud_rate_7d",
        "cp_fraud_rate_30d",
        "cp_frauds_30d",
    )


def test_hand_computed_rates_and_count() -> None:
    # Day 20 at 15:00. Labels arrived: today 1 fraud + 1 legit; 3 days ago 1 fraud + 2 legit;
    # 10 days ago 2 frauds; 31 days ago (outside every window... but pruned anyway) 1 fraud.
    labels = [
        ("a", True, at(20, 9)),
        ("b", False, at(20, 1)),
        ("c", True, at(17)),
        ("d", False, at(17)),
        ("e", False, at(17)),
        ("f", True, at(10)),
        ("g", True, at(10)),
    ]
    features, _ = update_account(None, tx("t", at(20, 15)), risk_of(labels))
    rate_1d, rate_7d, rate_30d, frauds_30d = features[CP]
    assert rate_1d == 1 / 2
    assert rate_7d == 2 / 5
    assert rate_30d == 4 / 7
    assert frauds_30d == 4.0
    named = features_dict(features)
    assert named["cp_fraud_rate_7d"] == 0.4
    assert named["cp_frauds_30d"] == 4.0


def test_rates_are_nan_when_no_label_arrived_in_the_window() -> None:
    risk = risk_of([("a", False, at(0))])
    features, _ = update_account(None, tx("t", at(3)), risk)
    rate_1d, rate_7d, rate_30d, frauds_30d = features[CP]
    assert math.isnan(rate_1d)
    assert rate_7d == 0.0 and rate_30d == 0.0
    assert frauds_30d == 0.0


def test_a_label_arriving_after_the_transaction_is_not_seen() -> None:
    risk = risk_of([("a", True, at(5, 13))])
    features, _ = update_account(None, tx("t", at(4, 23)), risk)
    assert all(math.isnan(v) for v in features[CP][:3])
    assert features[CP][3] == 0.0


def test_no_counterparty_risk_state_gives_nan() -> None:
    features, _ = update_account(None, tx("t", at(0)), None)
    assert all(math.isnan(v) for v in features[CP])


def test_transaction_without_counterparty_gives_nan_even_with_a_risk_state() -> None:
    risk = risk_of([("a", True, at(0, 1))])
    features, _ = update_account(None, tx("t", at(0, 5), cp=None), risk)
    assert all(math.isnan(v) for v in features[CP])
    assert features_dict(features)["cp_fraud_rate_1d"] is None


def test_the_risk_state_is_read_not_changed() -> None:
    risk = risk_of([("a", True, at(0, 1)), ("b", False, at(1))])
    before = risk.to_bytes()
    state = None
    for i in range(3):
        _, state = update_account(state, tx(f"t{i}", at(2, i)), risk)
    assert risk.to_bytes() == before


def test_counterparty_features_do_not_change_the_velocity_features() -> None:
    risk = risk_of([("a", True, at(0, 1))])
    with_risk, _ = update_account(None, tx("t", at(0, 5)), risk)
    without, _ = update_account(None, tx("t", at(0, 5)), None)
    rest = [i for i in range(N_FEATURES) if not CP.start <= i < CP.stop]
    assert len(rest) == N_FEATURES - 4
    assert [with_risk[i] for i in rest if with_risk[i] == with_risk[i]] == [
        without[i] for i in rest if without[i] == without[i]
    ]
    assert [math.isnan(with_risk[i]) for i in rest] == [math.isnan(without[i]) for i in rest]
