"""Hypothesis strategies for transaction messages: arbitrary bytes and hostile JSON.

JSON is written by hand where the standard library would refuse (lone surrogates, NaN,
400-digit integers, 5,000-deep nesting, duplicate keys), so the bytes are what a careless or
hostile producer could send.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from tests.poison import TS, seeds

#: Text with lone surrogates among ordinary characters.
TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=8)
IDS = st.sampled_from(["acc-1", "acc-2", "acc-3", "cp-1", "x"]) | TEXT
HUGE_INTS = st.integers(min_value=2**63 - 2, max_value=10**400) | st.integers(
    min_value=-(10**400), max_value=-(2**63) + 2
)
SCALARS = st.none() | st.booleans() | st.integers() | HUGE_INTS | st.floats() | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
TIMESTAMPS = (
    st.sampled_from([TS, 1_772_442_000_000, "2026-03-02T09:00:00", "9999-12-31T23:59:59Z"])
    | st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC)
        | st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    ).map(datetime.isoformat)
    | st.integers(0, 5_000_000_000_000)
    | HUGE_INTS
    | st.floats()
    | TEXT
)
AMOUNTS = (
    st.floats(0, 1e6)
    | st.sampled_from([1e39, 2e38, 3.5e38, 1e12, 1e12 + 1, 5e-324, 1e-300, -1.0, 0.0])
    | st.integers(0, 10**6)
    | HUGE_INTS
    | st.floats()
    | st.sampled_from(["12.50", "1e39", "nan", "1_000"])
)
TYPES = st.sampled_from(["PAYMENT", "TRANSFER", "CASH_OUT", "card", "WIRE"])
#: Optional fields, each with values of the right type most of the time.
OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "counterparty_id": IDS,
    "type": TYPES,
    "currency": st.sampled_from(["USD", "eur", "US"]) | TEXT,
    "channel": TEXT,
    "country": st.sampled_from(["US", "DE"]) | TEXT,
    "device_id": IDS,
    "merchant_category": TEXT,
    "balance_before": AMOUNTS,
    "balance_after": AMOUNTS,
}


def _field(typed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(typed, typed, typed, JSON_VALUES)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """Return a JSON transaction, its fields often wrong, as the bytes a producer sends."""
    doc: dict[str, Any] = {
        "tx_id": draw(_field(IDS)),
        "ts": draw(_field(TIMESTAMPS)),
        "account_id": draw(_field(IDS)),
        "amount": draw(_field(AMOUNTS)),
    }
    for name in draw(st.sets(st.sampled_from(sorted(OPTIONAL)), max_size=4)):
        doc[name] = draw(_field(OPTIONAL[name]))
    for name in draw(st.sets(st.sampled_from(sorted(doc)), max_size=1)):
        if draw(st.booleans()):
            del doc[name]
    doc.update(draw(st.dictionaries(TEXT, JSON_VALUES, max_size=2)))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    depth = draw(st.sampled_from([0, 0, 0, 2, 64, 65, 300, 1100, 5000]))
    if depth:
        array = "[" * depth + "]" * depth
        nest = draw(st.sampled_from([array, '{"a":' * depth + "1" + "}" * depth]))
        text = '{"deep": ' + nest + ", " + text[1:]
    if draw(st.booleans()):  # a duplicate key: the last one wins in both parsers
        name = draw(st.sampled_from(["tx_id", "ts", "account_id", "amount", "type"]))
        text = text[:-1] + f", {json.dumps(name)}: {json.dumps(draw(JSON_VALUES))}}}"
    return text.encode("utf-8", "surrogatepass")


SEED_VALUES = [value for _, _, value in seeds()]
MESSAGES = st.one_of(
    st.binary(max_size=48), documents(), documents(), documents(), st.sampled_from(SEED_VALUES)
)
#: Micro-batches of one pipeline, in order (state carries over between them).
BATCHES = st.lists(st.lists(MESSAGES, min_size=1, max_size=6), min_size=1, max_size=3)
