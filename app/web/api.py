"""Request checks and response bodies of the web API (pure code, unit-tested without a server).

Every failure is an :class:`ApiError` carrying the HTTP status and a message the views return
as ``{"error": message, ...}``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from models.features import AccountState
from models.labels import Label, LabelError, label_from_dict
from models.tiers import ALERTED_TIERS

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
TOKEN_HINT = "set VIGIL_WEB_TOKEN on the worker and send it as 'Authorization: Bearer <token>'"  # noqa: S105


class ApiError(Exception):
    """An HTTP error with a JSON body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """Return the JSON error document."""
        return {"error": self.message, "status": self.status, **self.extra}


def parse_limit(raw: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """Parse ``?limit=``: an integer within 1..maximum."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"limit must be an integer within 1..{maximum}") from None
    if not 1 <= value <= maximum:
        raise ApiError(400, f"limit must be an integer within 1..{maximum}")
    return value


def parse_tier(raw: str | None) -> str | None:
    """Parse ``?tier=``: empty for all, else HIGH, MEDIUM or LOW (any case)."""
    if raw is None or raw == "":
        return None
    tier = raw.upper()
    if tier not in ALERTED_TIERS:
        raise ApiError(400, f"tier must be one of {', '.join(ALERTED_TIERS)}")
    return tier


def check_token(authorization: str | None, token: str) -> None:
    """Allow a mutating request only with ``Authorization: Bearer <token>``.

    An empty configured token disables the mutating endpoints (403), so a worker started
    without one can never be written to through the web.
    """
    if not token:
        raise ApiError(403, f"labelling is disabled on this worker: {TOKEN_HINT}")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, f"a token is required: {TOKEN_HINT}")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, f"the token is not valid: {TOKEN_HINT}")


def check_body(content_type: str, content_length: int | None, max_bytes: int) -> None:
    """Refuse a body that is not JSON or is declared larger than ``max_bytes``."""
    if content_length is not None and content_length > max_bytes:
        raise ApiError(413, f"request body is larger than {max_bytes} bytes")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "send the body as application/json")


def decode_json_object(body: bytes, max_bytes: int) -> dict[str, Any]:
    """Decode a JSON object body no larger than ``max_bytes``."""
    if len(body) > max_bytes:
        raise ApiError(413, f"request body is larger than {max_bytes} bytes")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "request body must be a JSON object")
    return doc


def build_label(doc: Mapping[str, Any], alert: Mapping[str, Any] | None, now_ms: int) -> Label:
    """Make the label record of a POST, completed from the alert when it is known.

    The analyst sends ``tx_id`` and ``label``; the account, counterparty and transaction
    time come from the alert (the client cannot override what the alert says).
    """
    merged: dict[str, Any] = {
        "tx_id": doc.get("tx_id"),
        "label": doc.get("label"),
        "source": doc.get("source") or "web",
        "ts": now_ms,
    }
    for name in ("account_id", "counterparty_id", "tx_ts"):
        if doc.get(name) is not None:
            merged[name] = doc[name]
    if alert is not None:
        tx = alert.get("transaction")
        tx = tx if isinstance(tx, Mapping) else {}
        known = {
            "account_id": alert.get("account_id"),
            "counterparty_id": tx.get("counterparty_id"),
            "tx_ts": alert.get("event_ts"),
        }
        merged.update({k: v for k, v in known.items() if v is not None})
    try:
        return label_from_dict(merged)
    except LabelError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None


def account_view(account_id: str, raw_state: bytes | None) -> dict[str, Any] | None:
    """Return the account's velocity state as of its latest event, ``None`` if unknown."""
    if raw_state is None:
        return None
    state = AccountState.from_bytes(raw_state)
    std = (state.m2 / (state.n - 1)) ** 0.5 if state.n > 1 else None
    return {
        "account_id": account_id,
        "tx_count": state.n,
        "first_ts": state.first_ts_ms if state.first_ts_ms >= 0 else None,
        "last_ts": state.last_ts_ms if state.last_ts_ms >= 0 else None,
        "mean_amount": state.mean if state.n else None,
        "std_amount": std,
        "counterparties_remembered": len(state.cps),
        "devices_remembered": len(state.devices),
        # Windows end at the account's latest event time, which is what the next
        # transaction's features would start from.
        "windows": state.window(state.last_ts_ms) if state.last_ts_ms >= 0 else {},
    }
