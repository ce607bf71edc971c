"""The record the account pipeline forwards to the counterparty-keyed (fan-in) stage.

It carries the transaction as received plus what the account pipeline decided (score, tier,
model version, reasons, rules, features), so a fan-in hit can emit a complete Alert without
scoring again. ``alerts`` is false when the lists forbid alerts for the transaction (allow
listed or suppressed account).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from models.records import alert_record
from models.transaction import DEFAULT_MAX_AMOUNT, Transaction, transaction_from_dict

FORWARD_FORMAT = 1


def forward_record(
    tx: Transaction,
    score: float,
    tier: str,
    model_version: str,
    reasons: Sequence[dict[str, Any]],
    rules: Sequence[dict[str, str]],
    features: Sequence[float],
    scored_ts_ms: int,
    alerts: bool,
) -> bytes:
    """Serialize one forwarded transaction (NaN features become null)."""
    return orjson.dumps(
        {
            "format": FORWARD_FORMAT,
            "tx": tx.raw,
            "score": score,
            "tier": tier,
            "model_version": model_version,
            "reasons": list(reasons),
            "rules": list(rules),
            "features": [None if v != v else v for v in features],
            "scored_ts": scored_ts_ms,
            "alerts": alerts,
        }
    )


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A decoded forwarded record."""

    tx: Transaction
    score: float
    tier: str
    model_version: str
    reasons: list[dict[str, Any]]
    rules: list[dict[str, str]]
    features: list[float]
    scored_ts_ms: int
    alerts: bool


def parse_forward(raw: bytes | None, max_amount: float = DEFAULT_MAX_AMOUNT) -> Forwarded:
    """Decode a forwarded record; raise ``ValueError`` if it is not one.

    ``max_amount`` is the bound the account pipeline validated the transaction with.
    """
    if raw is None:
        raise ValueError("forwarded record has no value")
    doc = orjson.loads(raw)
    if not isinstance(doc, dict) or doc.get("format") != FORWARD_FORMAT:
        raise ValueError("not a forwarded record of format 1")
    return Forwarded(
        tx=transaction_from_dict(doc["tx"], max_amount),
        score=float(doc["score"]),
        tier=str(doc["tier"]),
        model_version=str(doc["model_version"]),
        reasons=list(doc["reasons"]),
        rules=list(doc["rules"]),
        features=[float("nan") if v is None else float(v) for v in doc["features"]],
        scored_ts_ms=int(doc["scored_ts"]),
        alerts=bool(doc["alerts"]),
    )


def fanin_alert(
    fwd: Forwarded,
    tier: str,
    rules: Sequence[dict[str, str]],
    reasons: Sequence[dict[str, Any]],
    scored_ts_ms: int,
) -> dict[str, Any]:
    """Build the Alert of a forwarded transaction that a fan-in rule escalated.

    ``alert_id`` is the ``tx_id`` as always: this alert supersedes any earlier alert of the
    same transaction (its tier is never lower and its ``rules`` include the earlier ones).
    """
    alert = alert_record(
        fwd.tx, fwd.score, tier, fwd.model_version, [], rules, fwd.features, scored_ts_ms
    )
    alert["reasons"] = list(reasons)
    return alert
