"""A known sequence of transactions for the integration tests, with what must come out.

Timestamps are fixed (March 2024) so the expected window counts are stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

BASE_MS = int(datetime(2024, 3, 4, 9, 0, tzinfo=UTC).timestamp() * 1000)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass
class Scenario:
    """Records to produce and the facts the tests check afterwards."""

    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    valid: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: raw value -> the field the dead-letter reason must name
    invalid: dict[bytes, str] = field(default_factory=dict)
    frauds: dict[str, str] = field(default_factory=dict)  # tx_id -> pattern

    def add(self, tx: dict[str, Any], key: str | None = None, pattern: str | None = None) -> None:
        self.records.append(((key or tx["account_id"]).encode(), orjson.dumps(tx)))
        self.valid[tx["tx_id"]] = tx
        if pattern:
            self.frauds[tx["tx_id"]] = pattern

    def add_invalid(self, raw: bytes, field_name: str, key: bytes | None = b"bad") -> None:
        self.records.append((key, raw))
        self.invalid[raw] = field_name


def legit_history(sc: Scenario, account: str, n: int, amount: float, start_ms: int) -> int:
    """Add ``n`` ordinary daytime card payments, one every 6 hours; return the last ts."""
    ts = start_ms
    balance = 5000.0
    for i in range(n):
        ts = start_ms + i * 6 * HOUR_MS
        spent = round(amount * (0.8 + 0.4 * ((i * 7) % 5) / 4), 2)
        sc.add(
            {
                "tx_id": f"{account}-h{i}",
                "ts": ts,
                "account_id": account,
                "amount": spent,
                "counterparty_id": f"m-{account}-{i % 3}",
                "type": "CARD",
                "channel": "pos",
                "country": "US",
                "device_id": f"dev-{account}",
                "merchant_category": "grocery",
                "balance_before": balance,
                "balance_after": round(balance - spent, 2),
            }
        )
        balance = round(balance - spent, 2)
    return ts


def build_scenario() -> Scenario:
    """Legit accounts, three seeded fraud patterns, invalid messages, one mis-keyed message."""
    sc = Scenario()
    for a in range(8):
        legit_history(sc, f"acc-legit-{a}", 12, 40.0 + 5 * a, BASE_MS + a * 60_000)

    # Card testing: a burst of tiny amounts at new merchants within a few minutes.
    last = legit_history(sc, "acc-ct", 10, 60.0, BASE_MS)
    burst_ms = last + 5 * HOUR_MS
    for i in range(14):
        sc.add(
            {
                "tx_id": f"acc-ct-burst{i}",
                "ts": burst_ms + i * 15_000,
                "account_id": "acc-ct",
                "amount": 1.0 + (i % 3) * 0.5,
                "counterparty_id": f"m-test-{i}",
                "type": "CARD",
                "channel": "online",
                "country": "US",
                "device_id": "dev-unknown-ct",
                "merchant_category": "online_retail",
                "balance_before": 4500.0 - i * 1.5,
                "balance_after": 4500.0 - (i + 1) * 1.5,
            },
            pattern="card_testing",
        )

    # Account takeover: a night-time transfer draining the balance to a new counterparty.
    last = legit_history(sc, "acc-ato", 10, 50.0, BASE_MS)
    sc.add(
        {
            "tx_id": "acc-ato-drain",
            "ts": last + 17 * HOUR_MS,  # 03:00 UTC
            "account_id": "acc-ato",
            "amount": 9800.0,
            "counterparty_id": "cp-never-seen",
            "type": "TRANSFER",
            "channel": "web",
            "country": "US",
            "device_id": "dev-new",
            "balance_before": 9800.0,
            "balance_after": 0.0,
        },
        pattern="account_takeover",
    )

    # Amount spike: 40x the account's usual amount.
    last = legit_history(sc, "acc-spike", 10, 30.0, BASE_MS)
    sc.add(
        {
            "tx_id": "acc-spike-big",
            "ts": last + 3 * HOUR_MS,
            "account_id": "acc-spike",
            "amount": 1200.0,
            "counterparty_id": "m-luxury",
            "type": "PAYMENT",
            "channel": "pos",
            "country": "US",
            "device_id": "dev-acc-spike",
            "merchant_category": "jewelry",
            "balance_before": 4700.0,
            "balance_after": 3500.0,
        },
        pattern="amount_spike",
    )

    # A producer that keys by something else: must be re-keyed, still scored once.
    sc.add(
        {
            "tx_id": "acc-legit-0-rekeyed",
            "ts": BASE_MS + 70 * HOUR_MS,
            "account_id": "acc-legit-0",
            "amount": 45.0,
            "counterparty_id": "m-acc-legit-0-1",
            "type": "CARD",
        },
        key="terminal-17",
    )

    ok = {"tx_id": "x", "ts": BASE_MS, "account_id": "acc-x", "amount": 1.0}
    sc.add_invalid(b"this is not json", "payload")
    sc.add_invalid(b"[1, 2, 3]", "payload")
    sc.add_invalid(orjson.dumps({k: v for k, v in ok.items() if k != "amount"}), "amount")
    sc.add_invalid(orjson.dumps({**ok, "tx_id": "neg", "amount": -5}), "amount")
    sc.add_invalid(
        b'{"tx_id": "nan", "ts": 1709542800000, "account_id": "a", "amount": NaN}', "amount"
    )
    sc.add_invalid(orjson.dumps({**ok, "tx_id": "badts", "ts": "yesterday"}), "ts")
    sc.add_invalid(orjson.dumps({**ok, "tx_id": "intacct", "account_id": 42}), "account_id")
    sc.add_invalid(orjson.dumps({**ok, "tx_id": "big", "memo": "x" * 70_000}), "payload")
    sc.add_invalid(orjson.dumps({**ok, "tx_id": None}), "tx_id", key=None)
    return sc
