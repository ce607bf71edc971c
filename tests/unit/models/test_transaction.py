"""Validation of incoming transactions: every refusal names the culprit field."""

from __future__ import annotations

import json

import pytest

from models.transaction import (
    DEFAULT_MAX_AMOUNT,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_TS_MS,
    MIN_TS_MS,
    Transaction,
    ValidationError,
    nesting_depth,
    parse_transaction,
    transaction_from_dict,
)

LIMIT = 65536
#: 2024-03-02T10:00:00Z in epoch milliseconds (1709337600 s is 2024-03-02T00:00:00Z).
TS_2024_03_02_10H_MS = 1_709_373_600_000

_DROP = object()


def doc(**changes: object) -> dict[str, object]:
    """Return a valid transaction document with ``changes`` applied (``_DROP`` removes)."""
    base: dict[str, object] = {
        "tx_id": "tx-1",
        "ts": "2024-03-02T10:00:00Z",
        "account_id": "acc-1",
        "amount": 12.5,
    }
    for key, value in changes.items():
        if value is _DROP:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def payload(**changes: object) -> bytes:
    return json.dumps(doc(**changes)).encode()


def refused(data: bytes | None, max_bytes: int = LIMIT) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_transaction(data, max_bytes)
    return info.value


# -- accepted input ---------------------------------------------------------------------------


def test_minimal_valid_transaction_with_defaults() -> None:
    tx = parse_transaction(payload(), LIMIT)
    assert isinstance(tx, Transaction)
    assert tx.tx_id == "tx-1"
    assert tx.account_id == "acc-1"
    assert tx.amount == 12.5
    assert tx.ts_ms == TS_2024_03_02_10H_MS
    assert tx.tz_offset_s == 0
    assert tx.currency == "USD"  # default
    assert tx.type is None
    assert tx.counterparty_id is None
    assert tx.balance_before is None
    assert tx.balance_after is None


def test_all_optional_fields_are_read() -> None:
    tx = parse_transaction(
        payload(
            counterparty_id="m-9",
            currency="eur",
            type="transfer",
            channel="web",
            country="DE",
            device_id="dev-7",
            merchant_category="5411",
            balance_before=1000,
            balance_after="250.25",
        ),
        LIMIT,
    )
    assert tx.counterparty_id == "m-9"
    assert tx.currency == "EUR"
    assert tx.type == "TRANSFER"
    assert (tx.channel, tx.country, tx.device_id, tx.merchant_category) == (
        "web",
        "DE",
        "dev-7",
        "5411",
    )
    assert tx.balance_before == 1000.0
    assert tx.balance_after == 250.25


@pytest.mark.parametrize(
    ("given", "expected"),
    [("payment", "PAYMENT"), ("Cash_Out", "CASH_OUT"), ("CARD", "CARD"), ("debit", "DEBIT")],
)
def test_type_is_case_normalised(given: str, expected: str) -> None:
    assert parse_transaction(payload(type=given), LIMIT).type == expected


@pytest.mark.parametrize(("given", "expected"), [("12.50", 12.5), ("0", 0.0), ("1e3", 1000.0)])
def test_decimal_string_amount_is_accepted(given: str, expected: float) -> None:
    tx = parse_transaction(payload(amount=given), LIMIT)
    assert tx.amount == expected
    assert isinstance(tx.amount, float)


def test_integer_amount_becomes_float() -> None:
    tx = parse_transaction(payload(amount=7), LIMIT)
    assert tx.amount == 7.0
    assert isinstance(tx.amount, float)


def test_zero_amount_is_accepted() -> None:
    assert parse_transaction(payload(amount=0), LIMIT).amount == 0.0


@pytest.mark.parametrize(
    ("ts", "ts_ms", "offset_s"),
    [
        ("2024-03-02T10:00:00Z", TS_2024_03_02_10H_MS, 0),
        ("2024-03-02T10:00:00+00:00", TS_2024_03_02_10H_MS, 0),
        # 12:00 at +02:00 is 10:00 UTC.
        ("2024-03-02T12:00:00+02:00", TS_2024_03_02_10H_MS, 7200),
        # 04:30 at -05:30 is 10:00 UTC.
        ("2024-03-02T04:30:00-05:30", TS_2024_03_02_10H_MS, -19800),
        ("2024-03-02T10:00:00.250Z", TS_2024_03_02_10H_MS + 250, 0),
        (TS_2024_03_02_10H_MS, TS_2024_03_02_10H_MS, 0),
        (float(TS_2024_03_02_10H_MS), TS_2024_03_02_10H_MS, 0),
    ],
)
def test_timestamp_forms(ts: object, ts_ms: int, offset_s: int) -> None:
    tx = parse_transaction(payload(ts=ts), LIMIT)
    assert tx.ts_ms == ts_ms
    assert tx.tz_offset_s == offset_s


def test_timestamp_range_bounds() -> None:
    assert parse_transaction(payload(ts=MIN_TS_MS), LIMIT).ts_ms == MIN_TS_MS
    assert refused(payload(ts=MIN_TS_MS - 1)).field == "ts"
    assert parse_transaction(payload(ts=MAX_TS_MS - 1), LIMIT).ts_ms == MAX_TS_MS - 1
    assert refused(payload(ts=MAX_TS_MS)).field == "ts"


def test_unknown_fields_are_kept_in_raw() -> None:
    tx = parse_transaction(payload(ip="10.0.0.1", extra={"nested": [1, 2]}), LIMIT)
    assert tx.raw["ip"] == "10.0.0.1"
    assert tx.raw["extra"] == {"nested": [1, 2]}
    assert tx.raw["tx_id"] == "tx-1"


def test_payload_exactly_at_the_limit_is_accepted() -> None:
    data = payload()
    assert parse_transaction(data, len(data)).tx_id == "tx-1"


def test_transaction_from_dict_matches_parse() -> None:
    assert transaction_from_dict(doc()) == parse_transaction(payload(), LIMIT)


# -- refused input ----------------------------------------------------------------------------


def test_none_payload() -> None:
    assert refused(None).field == "payload"


def test_payload_over_byte_limit() -> None:
    data = payload()
    err = refused(data, max_bytes=len(data) - 1)
    assert err.field == "payload"
    assert str(len(data)) in str(err)


@pytest.mark.parametrize(
    "data",
    [b"not json", b"", b'{"tx_id": "a",', b"\xff\xfe\x00garbage", b"{'tx_id': 'single'}"],
)
def test_not_json(data: bytes) -> None:
    err = refused(data)
    assert err.field == "payload"
    assert "JSON" in str(err)


@pytest.mark.parametrize("data", [b"[1, 2, 3]", b'[{"tx_id": "a"}]', b"42", b'"text"', b"null"])
def test_json_that_is_not_an_object(data: bytes) -> None:
    err = refused(data)
    assert err.field == "payload"


@pytest.mark.parametrize("name", ["tx_id", "ts", "account_id", "amount"])
def test_missing_required_field(name: str) -> None:
    err = refused(payload(**{name: _DROP}))
    assert err.field == name
    assert "missing" in err.problem


@pytest.mark.parametrize("name", ["tx_id", "ts", "account_id", "amount"])
def test_null_required_field(name: str) -> None:
    assert refused(payload(**{name: None})).field == name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("amount", True),
        ("amount", False),
        ("amount", [1]),
        ("amount", {"value": 1}),
        ("amount", "twelve"),
        ("account_id", 123),
        ("account_id", ["acc"]),
        ("tx_id", 17),
        ("tx_id", "   "),
        ("tx_id", "x" * (MAX_ID_CHARS + 1)),
        ("ts", True),
        ("ts", {"ms": 1}),
        ("ts", [TS_2024_03_02_10H_MS]),
        ("counterparty_id", 99),
        ("channel", 1),
        ("balance_before", "lots"),
        ("balance_after", True),
    ],
)
def test_wrong_type_names_the_field(name: str, value: object) -> None:
    err = refused(payload(**{name: value}))
    assert err.field == name
    assert str(err).startswith(f"{name}: ")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_literals_in_amount(literal: bytes) -> None:
    data = (
        b'{"tx_id": "t", "ts": "2024-03-02T10:00:00Z", "account_id": "a", "amount": '
        + literal
        + b"}"
    )
    # The stdlib parser reads these literals; make sure that is what the payload means.
    assert json.loads(data)["amount"] != 0
    err = refused(data)
    assert err.field == "amount"
    assert "finite" in err.problem


@pytest.mark.parametrize("text", ["NaN", "inf", "-Infinity", "1e400"])
def test_non_finite_amount_strings(text: str) -> None:
    assert refused(payload(amount=text)).field == "amount"


def test_nan_literal_in_ts() -> None:
    data = b'{"tx_id": "t", "ts": NaN, "account_id": "a", "amount": 1}'
    assert refused(data).field == "ts"


def test_amount_integer_too_large_for_a_float_is_a_validation_error() -> None:
    # 10**400 is valid JSON; orjson refuses it, the stdlib fallback reads it as an int and
    # float() of that int raises OverflowError. It must be a ValidationError naming the
    # field so the message goes to the dead-letter topic instead of escaping the agent.
    data = (
        b'{"tx_id": "t", "ts": "2024-03-02T10:00:00Z", "account_id": "a", "amount": 1'
        + b"0" * 400
        + b"}"
    )
    err = refused(data)
    assert err.field == "amount"


@pytest.mark.parametrize("amount", [-0.01, -1, "-5.00"])
def test_negative_amount(amount: object) -> None:
    err = refused(payload(amount=amount))
    assert err.field == "amount"
    assert ">= 0" in err.problem


@pytest.mark.parametrize("ts", ["yesterday", "2024-13-01T00:00:00Z", "02/03/2024 10:00", ""])
def test_unparseable_timestamp(ts: str) -> None:
    err = refused(payload(ts=ts))
    assert err.field == "ts"


@pytest.mark.parametrize("ts", ["2024-03-02T10:00:00", "2024-03-02 10:00:00", "2024-03-02"])
def test_naive_timestamp_without_zone(ts: str) -> None:
    err = refused(payload(ts=ts))
    assert err.field == "ts"
    assert "zone" in err.problem


@pytest.mark.parametrize("ts", [1_700_000_000, 1_700_000_000.5, 0, -1])
def test_epoch_seconds_instead_of_milliseconds(ts: float) -> None:
    err = refused(payload(ts=ts))
    assert err.field == "ts"


@pytest.mark.parametrize("currency", ["US", "USDX", 840, "U$D", "", "12A"])
def test_bad_currency(currency: object) -> None:
    assert refused(payload(currency=currency)).field == "currency"


@pytest.mark.parametrize("tx_type", ["WIRE", "", 3, ["PAYMENT"], "PAYMENTS"])
def test_bad_type(tx_type: object) -> None:
    assert refused(payload(type=tx_type)).field == "type"


def test_validation_error_shape() -> None:
    err = refused(payload(amount=-1))
    assert isinstance(err, ValueError)
    assert err.reason == "amount"
    assert str(err) == f"amount: {err.problem}"


# -- bounds: what would break a later step is refused here, naming the field -------------------


@pytest.mark.parametrize(
    "name", ["tx_id", "account_id", "counterparty_id", "device_id", "channel", "country"]
)
def test_lone_surrogate_in_a_string_field_names_it(name: str) -> None:
    data = payload(**{name: "ok\ud800"})  # json.dumps escapes it as \ud800
    assert b"\\ud800" in data
    err = refused(data)
    assert err.field == name
    assert "surrogate" in err.problem


def test_lone_surrogate_from_the_issue_names_tx_id() -> None:
    data = b'{"tx_id":"\\ud800","ts":"2026-03-02T09:00:00Z","account_id":"x","amount":1}'
    assert refused(data).field == "tx_id"


def test_lone_surrogate_in_a_direct_dict_is_refused_too() -> None:
    with pytest.raises(ValidationError) as err:
        transaction_from_dict(doc(account_id="a\udc80"))
    assert err.value.field == "account_id"


def test_lone_surrogate_in_an_unknown_field_names_it_and_bounds_the_reason() -> None:
    err = refused(payload(note=["fine", {"deeper": "\udfff"}]))
    assert err.field == "note"
    assert err.reason == "other_field"  # a producer cannot mint metric label values


def test_lone_surrogate_in_a_field_name_is_a_payload_error() -> None:
    assert refused(payload(**{"n\ud800": 1})).field == "payload"


def test_a_pair_of_surrogates_is_a_valid_character() -> None:
    data = payload(note="\U0001f600")  # escaped by json.dumps as a surrogate pair
    assert b"\\ud83d\\ude00" in data
    assert parse_transaction(data, LIMIT).raw["note"] == "\U0001f600"


def _nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return payload()[:-1] + b', "deep": ' + opener * depth + closer * depth + b"}"


@pytest.mark.parametrize("depth", [65, 300, 1100, 5000, 20000])
def test_deep_nesting_is_refused_before_parsing(depth: int) -> None:
    err = refused(_nested(depth))
    assert err.field == "payload"
    assert f"nested {depth + 1} deep" in err.problem  # the document itself is one level


def test_deep_objects_are_refused_like_arrays() -> None:
    data = payload()[:-1] + b', "deep": ' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}"
    assert refused(data).field == "payload"


def test_nesting_up_to_the_bound_is_accepted_and_kept() -> None:
    tx = parse_transaction(_nested(MAX_JSON_DEPTH - 1), LIMIT)
    assert isinstance(tx.raw["deep"], list)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    note = "[" * 200 + '\\"{' * 100
    tx = parse_transaction(payload(note=note), LIMIT)
    assert tx.raw["note"] == note


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"{}", 1),
        (b'{"a": [[1], {"b": []}]}', 4),
        (b'{"a": "[[[[", "b": ["]]]"]}', 2),
        (b'["\\"[", [[]]]', 3),
        (b'"unterminated [[[[', 0),
        (b"[[[", 3),
    ],
)
def test_nesting_depth(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_400_digit_integer_ts_names_ts() -> None:
    data = payload()[:-1] + b', "ts": 1' + b"0" * 399 + b"}"  # a duplicate key: the last wins
    err = refused(data)
    assert err.field == "ts"


@pytest.mark.parametrize("ts", [10**20, 1e300, -(10**19)])
def test_huge_epoch_ts_names_ts(ts: float) -> None:
    err = refused(payload(ts=ts))
    assert err.field == "ts"
    assert len(str(err)) < 200


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"])
def test_timestamps_outside_the_range_name_ts(ts: str) -> None:
    assert refused(payload(ts=ts)).field == "ts"


def test_integer_beyond_64_bits_in_an_unknown_field_beside_nan() -> None:
    # orjson refuses the NaN; the stdlib reads 2**70 as an int that orjson cannot write back.
    data = payload()[:-1] + b', "big": ' + str(2**70).encode() + b"}"
    assert parse_transaction(data, LIMIT).raw["big"] == float(2**70)  # orjson alone: a float
    err = refused(data[:-1] + b', "note": NaN}')
    assert err.field == "big"
    assert "64 bits" in err.problem


def test_nan_in_an_unknown_field_names_it() -> None:
    err = refused(payload()[:-1] + b', "note": NaN}')
    assert err.field == "note"


@pytest.mark.parametrize("amount", [1e39, 2e38, DEFAULT_MAX_AMOUNT * 1.001, 10**13])
def test_amount_beyond_the_maximum_names_amount(amount: float) -> None:
    err = refused(payload(amount=amount))
    assert err.field == "amount"
    assert "VIGIL_MAX_AMOUNT" in err.problem


def test_amount_at_the_maximum_is_accepted() -> None:
    assert parse_transaction(payload(amount=DEFAULT_MAX_AMOUNT), LIMIT).amount == 1e12


def test_the_maximum_is_a_parameter() -> None:
    data = payload(amount=5000.0)
    assert parse_transaction(data, LIMIT, max_amount=5000.0).amount == 5000.0
    with pytest.raises(ValidationError) as err:
        parse_transaction(data, LIMIT, max_amount=4999.99)
    assert err.value.field == "amount"


@pytest.mark.parametrize("name", ["balance_before", "balance_after"])
@pytest.mark.parametrize("value", [1e39, -1e39, "-1e300"])
def test_balances_beyond_the_maximum_name_the_field(name: str, value: object) -> None:
    assert refused(payload(**{name: value})).field == name


def test_negative_balances_within_the_maximum_are_accepted() -> None:
    tx = parse_transaction(payload(balance_before=-250.0, balance_after=-300.5), LIMIT)
    assert (tx.balance_before, tx.balance_after) == (-250.0, -300.5)


def test_schema_fields_are_their_own_reason() -> None:
    assert ValidationError("amount", "x").reason == "amount"
    assert ValidationError("my-field", "x").reason == "other_field"
