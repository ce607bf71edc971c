"""Poison messages for the transactions topic: the seeds of issue 12 and a few more.

Each seed is ``(name, account, value)``: the raw message value and the account it names (the
message key producers use), or ``None`` where it names none. Shared by the property test of
the pipeline and the live-worker test.
"""

from __future__ import annotations

import json
from typing import Any

TS = "2026-03-02T09:00:00Z"
#: A message this size is the most the pipeline accepts (``VIGIL_MAX_MESSAGE_BYTES``).
MAX_MESSAGE_BYTES = 65536


def tx_json(tx_id: str, account: str, amount: Any = 10.0, **fields: Any) -> bytes:
    """Return a transaction as JSON bytes; non-finite numbers and lone surrogates kept."""
    doc = {"tx_id": tx_id, "ts": TS, "account_id": account, "amount": amount, **fields}
    return json.dumps(doc).encode()


def padded(tx_id: str, account: str, size: int, **fields: Any) -> bytes:
    """Return a transaction padded with an unknown field to exactly ``size`` bytes."""
    bare = tx_json(tx_id, account, pad="", **fields)
    raw = tx_json(tx_id, account, pad="x" * (size - len(bare)), **fields)
    assert len(raw) == size
    return raw


def nested(depth: int) -> bytes:
    """Return a transaction whose unknown field ``deep`` is nested ``depth`` arrays deep."""
    head = tx_json("deep-" + str(depth), "poison-deep")[:-1]
    return head + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"


#: An amount that needs the AML round-amount rule (a LOW alert whatever the model says).
ALERTED = {"type": "TRANSFER", "counterparty_id": "cp-poison", "amount": 25_000}


def seeds() -> list[tuple[str, str | None, bytes]]:
    """Return the poison corpus in sending order (the order matters for some accounts)."""
    big = "1" + "0" * 399
    out: list[tuple[str, str | None, bytes]] = [
        (
            "surrogate tx_id",
            "x",
            b'{"tx_id":"\\ud800","ts":"2026-03-02T09:00:00Z","account_id":"x","amount":1}',
        ),
        ("surrogate account_id", None, tx_json("s-acct", "acct-\udc80")),
        (
            "surrogate counterparty_id",
            "poison-s",
            tx_json("s-cp", "poison-s", counterparty_id="\ud83d"),
        ),
        ("surrogate device_id", "poison-s", tx_json("s-dev", "poison-s", device_id="d\udfff")),
        ("surrogate in unknown field", "poison-s", tx_json("s-unk", "poison-s", note="\ud800x")),
        ("surrogate in field name", "poison-s", tx_json("s-key", "poison-s", **{"n\ud800": 1})),
        (
            "CESU-8 surrogate bytes",
            "poison-s",
            b'{"tx_id":"\xed\xa0\x80","ts":1772442000000,"account_id":"poison-s","amount":1}',
        ),
        ("invalid UTF-8", None, b"\xff\xfe{\x00"),
        ("empty value", None, b""),
        ("amount 1e39", "poison-big", tx_json("big-1e39", "poison-big", 1e39)),
        ("2e38 payment 1", "poison-2e38", tx_json("p2e38-1", "poison-2e38", 2e38)),
        ("2e38 payment 2", "poison-2e38", tx_json("p2e38-2", "poison-2e38", 2e38)),
        ("alerted after 2e38", "poison-2e38", tx_json("p2e38-3", "poison-2e38", **ALERTED)),
        (
            "400-digit ts",
            "poison-ts",
            f'{{"tx_id":"ts400","ts":{big},"account_id":"poison-ts","amount":1}}'.encode(),
        ),
        (
            "400-digit amount",
            "poison-ts",
            f'{{"tx_id":"amt400","ts":"{TS}","account_id":"poison-ts","amount":{big}}}'.encode(),
        ),
        ("ts 1e300", "poison-ts", tx_json("ts1e300", "poison-ts", ts=1e300)),
        ("ts year 9999", "poison-ts", tx_json("ts9999", "poison-ts", ts="9999-12-31T23:59:59Z")),
        (
            "NaN beside 2^70",
            "poison-nan",
            tx_json("nan70", "poison-nan", note=float("nan"), big=2**70),
        ),
        (
            "2^70 amount beside NaN",
            "poison-nan",
            tx_json("amt70", "poison-nan", 2**70, note=float("nan")),
        ),
        ("Infinity amount", "poison-nan", tx_json("inf", "poison-nan", float("inf"))),
        (
            "duplicate amount keys",
            "poison-dup",
            tx_json("dup", "poison-dup", 1.0)[:-1] + b', "amount": 1e39}',
        ),
        ("nested 300 deep", "poison-deep", nested(300)),
        ("nested 5000 deep", "poison-deep", nested(5000)),
        (
            "tiny balance",
            "poison-bal",
            tx_json("bal", "poison-bal", balance_before=1e-300, balance_after=0.0, **ALERTED),
        ),
        ("tiny mean 1", "poison-mean", tx_json("mean-1", "poison-mean", 5e-324)),
        ("tiny mean 2", "poison-mean", tx_json("mean-2", "poison-mean", **ALERTED)),
        ("negative balance", "poison-bal", tx_json("negbal", "poison-bal", balance_before=-1e300)),
        (
            "payload at the limit",
            "poison-size",
            padded("size-max", "poison-size", MAX_MESSAGE_BYTES, **ALERTED),
        ),
        (
            "payload over the limit",
            "poison-size",
            padded("size-over", "poison-size", MAX_MESSAGE_BYTES + 1),
        ),
        (
            "invalid payload at the limit",
            "poison-size",
            padded("size-bad", "poison-size", MAX_MESSAGE_BYTES, ts="never"),
        ),
        ("array", None, b"[1, 2, 3]"),
        ("string", None, b'"tx"'),
    ]
    return out
