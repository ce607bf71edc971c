"""Label records on the ``labels`` topic: validation names the field, bytes round trip."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from models.counterparty_risk import DAY_MS, CounterpartyRisk, apply_label
from models.labels import (
    MAX_LABEL_AHEAD_MS,
    MAX_LABEL_BYTES,
    Label,
    LabelError,
    check_label_time,
    label_from_dict,
    parse_label,
)
from models.transaction import MAX_TS_MS

TS = 1_709_251_200_000


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"tx_id": "tx-1", "label": "fraud", "ts": TS, "source": "analyst"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_parse_a_full_label() -> None:
    raw = orjson.dumps(
        doc(counterparty_id="m-9", account_id="acc-1", tx_ts=TS - 5_000, extra="kept out")
    )
    label = parse_label(raw)
    assert label == Label(
        tx_id="tx-1",
        label="fraud",
        ts_ms=TS,
        source="analyst",
        counterparty_id="m-9",
        account_id="acc-1",
        tx_ts_ms=TS - 5_000,
    )
    assert label.is_fraud


def test_minimal_label_defaults() -> None:
    label = parse_label(orjson.dumps({"tx_id": "t", "label": "legit", "ts": 5}))
    assert label.source == "unknown"
    assert label.counterparty_id is None and label.account_id is None and label.tx_ts_ms is None
    assert not label.is_fraud
    assert label.to_dict() == {"tx_id": "t", "label": "legit", "source": "unknown", "ts": 5}


@pytest.mark.parametrize(
    "label",
    [
        Label("tx-1", "fraud", TS),
        Label("tx-2", "legit", TS + 1, "web", "m-1", "acc-2", TS - 7),
    ],
)
def test_to_bytes_round_trip(label: Label) -> None:
    assert parse_label(label.to_bytes()) == label


def test_float_ts_is_truncated_to_ms() -> None:
    assert parse_label(orjson.dumps(doc(ts=float(TS) + 0.7))).ts_ms == TS


def test_default_ts_fills_a_missing_ts() -> None:
    label = label_from_dict(doc(ts=None), default_ts_ms=TS + 9)
    assert label.ts_ms == TS + 9
    assert label_from_dict(doc(), default_ts_ms=1).ts_ms == TS  # given ts wins
    with pytest.raises(LabelError) as err:
        label_from_dict(doc(ts=None))
    assert err.value.field == "ts"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tx_id": None}, "tx_id"),
        ({"tx_id": ""}, "tx_id"),
        ({"tx_id": "   "}, "tx_id"),
        ({"tx_id": 12}, "tx_id"),
        ({"tx_id": "x" * 257}, "tx_id"),
        ({"label": None}, "label"),
        ({"label": "FRAUD"}, "label"),
        ({"label": 1}, "label"),
        ({"label": "maybe"}, "label"),
        ({"ts": "2024-03-01"}, "ts"),
        ({"ts": True}, "ts"),
        ({"ts": -1}, "ts"),
        ({"source": ""}, "source"),
        ({"source": "s" * 65}, "source"),
        ({"counterparty_id": 5}, "counterparty_id"),
        ({"counterparty_id": ""}, "counterparty_id"),
        ({"account_id": ["a"]}, "account_id"),
        ({"tx_ts": "yesterday"}, "tx_ts"),
        ({"tx_ts": -5}, "tx_ts"),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    raw = orjson.dumps(doc(**changes))  # a None change removes the field
    with pytest.raises(LabelError) as err:
        parse_label(raw)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_non_finite_ts_is_refused() -> None:
    with pytest.raises(LabelError) as err:
        label_from_dict(doc(ts=float("inf")))
    assert err.value.field == "ts"
    with pytest.raises(LabelError) as err:
        label_from_dict(doc(ts=float("nan")))
    assert err.value.field == "ts"


@pytest.mark.parametrize(
    "raw", [None, b"", b"not json", b"[1, 2]", b'"fraud"', b"x" * (MAX_LABEL_BYTES + 1)]
)
def test_unusable_payloads_name_the_payload(raw: bytes | None) -> None:
    with pytest.raises(LabelError) as err:
        parse_label(raw)
    assert err.value.field == "payload"


def test_label_error_is_a_value_error() -> None:
    assert issubclass(LabelError, ValueError)


@pytest.mark.parametrize(
    "ts", [1e300, 253_402_300_799_000, 10**400, MAX_TS_MS], ids=["1e300", "9999", "400", "2100"]
)
def test_far_future_or_huge_ts_is_refused(ts: float) -> None:
    with pytest.raises(LabelError) as err:
        label_from_dict(doc(ts=ts))
    assert err.value.field == "ts"


def test_huge_tx_ts_is_refused() -> None:
    with pytest.raises(LabelError) as err:
        label_from_dict(doc(tx_ts=10**30))
    assert err.value.field == "tx_ts"


@pytest.mark.parametrize("name", ["tx_id", "counterparty_id", "account_id", "source"])
def test_lone_surrogate_names_the_field(name: str) -> None:
    with pytest.raises(LabelError) as err:
        label_from_dict(doc(**{name: "x\ud800"}))
    assert err.value.field == name


def test_label_from_the_future_is_refused_against_the_clock() -> None:
    now = TS + 10 * DAY_MS
    check_label_time(label_from_dict(doc(ts=now + MAX_LABEL_AHEAD_MS)), now)  # a day is fine
    with pytest.raises(LabelError) as err:
        check_label_time(label_from_dict(doc(ts=now + MAX_LABEL_AHEAD_MS + 1)), now)
    assert err.value.field == "ts"


def test_a_refused_future_label_would_have_wiped_the_counterparty() -> None:
    """Why the clock check exists: one label 40 days ahead drops every real one."""
    risk = None
    for i in range(5):
        risk, _ = apply_label(risk, f"t{i}", True, TS + i * DAY_MS)
    assert risk is not None and risk.counts(TS + 5 * DAY_MS, 30) == (5, 5)
    future = label_from_dict(doc(tx_id="evil", ts=TS + 45 * DAY_MS))
    with pytest.raises(LabelError):
        check_label_time(future, TS + 5 * DAY_MS)
    wiped, _ = apply_label(
        CounterpartyRisk(list(risk.days), list(risk.verdicts)), "evil", False, future.ts_ms
    )
    assert wiped.counts(TS + 5 * DAY_MS, 30) == (0, 0)
