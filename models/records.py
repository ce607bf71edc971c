"""Output records: what goes to ``transactions.scored`` and the alert topics (pure code).

Times are epoch milliseconds (UTC). Every record carries ``tx_id``; alerts use it as
``alert_id`` so downstream consumers can de-duplicate at-least-once deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from models.features import features_dict
from models.scorer import Reason
from models.transaction import SCHEMA_VERSION, Transaction


def rule_hit(rule_id: str, tier: str, explanation: str) -> dict[str, str]:
    """Return the JSON form of one AML rule hit."""
    return {"rule_id": rule_id, "tier": tier, "explanation": explanation}


def scored_record(
    tx: Transaction,
    score: float,
    tier: str,
    model_version: str,
    rules: Sequence[dict[str, str]],
    scored_ts_ms: int,
    duplicate: bool = False,
    challenger: dict[str, Any] | None = None,
) -> bytes:
    """Serialize the ``transactions.scored`` record of one transaction.

    ``challenger`` is the shadow model's verdict (see :func:`challenger_record`); it is
    recorded for comparison and never alerted on.
    """
    record = {
        "schema_version": SCHEMA_VERSION,
        "tx_id": tx.tx_id,
        "account_id": tx.account_id,
        "score": round(score, 6),
        "tier": tier,
        "model_version": model_version,
        "rules": rules,
        "event_ts": tx.ts_ms,
        "scored_ts": scored_ts_ms,
        "replayed": duplicate,
    }
    if challenger is not None:
        record["challenger"] = challenger
    return orjson.dumps(record)


def challenger_record(model_version: str, score: float, tier: str) -> dict[str, Any]:
    """Return the JSON form of a challenger's score of one transaction."""
    return {"model_version": model_version, "score": round(score, 6), "tier": tier}


def alert_record(
    tx: Transaction,
    score: float,
    tier: str,
    model_version: str,
    reasons: Sequence[Reason],
    rules: Sequence[dict[str, str]],
    features: list[float],
    scored_ts_ms: int,
) -> dict[str, Any]:
    """Build an Alert (DESIGN.md) as a JSON-ready dict."""
    return {
        "schema_version": SCHEMA_VERSION,
        "alert_id": tx.tx_id,
        "tx_id": tx.tx_id,
        "account_id": tx.account_id,
        "tier": tier,
        "score": round(score, 6),
        "model_version": model_version,
        "reasons": [r.to_dict() for r in reasons],
        "rules": list(rules),
        "transaction": tx.raw,
        "features": features_dict(features),
        "event_ts": tx.ts_ms,
        "scored_ts": scored_ts_ms,
    }


def dumps(record: dict[str, Any]) -> bytes:
    """Serialize a record with the same options everywhere."""
    return orjson.dumps(record)
