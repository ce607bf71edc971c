"""The Transaction record and its validation (pure code, no Faust).

Validation is strict and names the field that is wrong, so the dead-letter topic tells the
producer team exactly what to fix. Unknown fields are kept in :attr:`Transaction.raw`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

SCHEMA_VERSION = 1

TX_TYPES = frozenset({"PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT", "CARD"})
#: Event times outside this range are almost surely a unit error (seconds vs ms).
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_ID_CHARS = 256

#: Plain decimal strings only: float() would also take "nan", "inf", "1_000" and spaces.
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


class ValidationError(ValueError):
    """A message is not a valid Transaction; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    @property
    def reason(self) -> str:
        """Return the short machine-friendly reason code used as a metric label."""
        return self.field


@dataclass(slots=True)
class Transaction:
    """A validated transaction; ``raw`` is the decoded input, unknown fields included."""

    tx_id: str
    ts_ms: int
    #: Offset of the event's own time zone from UTC, for local hour-of-day features.
    tz_offset_s: int
    account_id: str
    amount: float
    counterparty_id: str | None
    currency: str
    type: str | None
    channel: str | None
    country: str | None
    device_id: str | None
    merchant_category: str | None
    balance_before: float | None
    balance_after: float | None
    raw: dict[str, Any]
    #: :func:`tx_hash` of ``tx_id``: the replay memories compare it, so it is worked out once.
    id_hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.id_hash = tx_hash(self.tx_id)


def _decode(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses NaN/Infinity literals; the stdlib parser reads them so that the error
    # can name the field that holds one.
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("payload", f"not valid JSON ({exc})") from None


def _required_id(doc: dict[str, Any], name: str) -> str:
    if name not in doc or doc[name] is None:
        raise ValidationError(name, "required field is missing")
    value = doc[name]
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(name, "must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise ValidationError(name, f"longer than {MAX_ID_CHARS} characters")
    return value


def _optional_str(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None or (type(value) is str and len(value) <= MAX_ID_CHARS):
        return value  # the common case, checked first: this runs per field per message
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, got {type(value).__name__}")
    if len(value) > MAX_ID_CHARS:
        raise ValidationError(name, f"longer than {MAX_ID_CHARS} characters")
    return value


def _number(doc: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = doc.get(name)
    if type(value) is float and value - value == 0.0:  # finite float: the common case
        return value
    if value is None:
        if required:
            raise ValidationError(name, "required field is missing")
        return None
    if isinstance(value, bool):
        raise ValidationError(name, "must be a number, got bool")
    if isinstance(value, str):
        # Decimal strings are common in banking exports ("12.50"); accept them.
        if not _DECIMAL.fullmatch(value):
            raise ValidationError(name, f"not a number: {value[:40]!r}")
    elif not isinstance(value, int | float):
        raise ValidationError(name, f"must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise ValidationError(name, "too large for a number") from None
    if not math.isfinite(number):
        raise ValidationError(name, "must be finite (NaN and infinity are refused)")
    return number


def _timestamp(doc: dict[str, Any]) -> tuple[int, int]:
    """Return ``(epoch_ms, tz_offset_s)`` from ISO-8601 with a zone or epoch milliseconds."""
    value = doc.get("ts")
    if type(value) is int and MIN_TS_MS <= value < MAX_TS_MS:
        return value, 0  # epoch milliseconds: the common case
    if value is None:
        raise ValidationError("ts", "required field is missing")
    if isinstance(value, bool):
        raise ValidationError("ts", "must be ISO-8601 with a time zone or epoch milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValidationError("ts", "must be finite")
        ts_ms, offset_s = int(value), 0
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError("ts", f"unparseable timestamp {value[:40]!r}") from None
        offset = parsed.utcoffset()
        if offset is None:
            raise ValidationError("ts", "timestamp has no time zone")
        ts_ms = int(parsed.timestamp() * 1000)
        offset_s = int(offset.total_seconds())
    else:
        raise ValidationError("ts", f"must be a string or a number, got {type(value).__name__}")
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise ValidationError("ts", f"{ts_ms} ms is outside 2000..2100 (seconds sent as ms?)")
    return ts_ms, offset_s


def transaction_from_dict(doc: Any) -> Transaction:
    """Validate a decoded JSON document; raise :class:`ValidationError` naming the field."""
    if not isinstance(doc, dict):
        raise ValidationError("payload", f"must be a JSON object, got {type(doc).__name__}")
    tx_id = _required_id(doc, "tx_id")
    ts_ms, offset_s = _timestamp(doc)
    account_id = _required_id(doc, "account_id")
    amount = _number(doc, "amount", required=True)
    assert amount is not None
    if amount < 0:
        raise ValidationError("amount", "must be >= 0")
    currency = doc.get("currency")
    if currency is None:
        currency = "USD"
    elif not (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
    ):
        raise ValidationError("currency", "must be a 3-letter ISO 4217 code")
    tx_type = doc.get("type")
    if tx_type is not None:
        if not isinstance(tx_type, str) or tx_type.upper() not in TX_TYPES:
            raise ValidationError("type", f"must be one of {', '.join(sorted(TX_TYPES))}")
        tx_type = tx_type.upper()
    return Transaction(
        tx_id=tx_id,
        ts_ms=ts_ms,
        tz_offset_s=offset_s,
        account_id=account_id,
        amount=amount,
        counterparty_id=_optional_str(doc, "counterparty_id"),
        currency=currency.upper(),
        type=tx_type,
        channel=_optional_str(doc, "channel"),
        country=_optional_str(doc, "country"),
        device_id=_optional_str(doc, "device_id"),
        merchant_category=_optional_str(doc, "merchant_category"),
        balance_before=_number(doc, "balance_before", required=False),
        balance_after=_number(doc, "balance_after", required=False),
        raw=doc,
    )


def tx_hash(tx_id: str) -> int:
    """Return a stable 63-bit hash of a transaction id (fits a signed JSON integer).

    The replay memories (account state, fan-in state, counterparty labels) store these.
    """
    digest = hashlib.blake2b(tx_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def parse_transaction(payload: bytes | None, max_bytes: int) -> Transaction:
    """Decode and validate one message value; raise :class:`ValidationError` if unusable."""
    if payload is None:
        raise ValidationError("payload", "message has no value")
    if len(payload) > max_bytes:
        raise ValidationError("payload", f"{len(payload)} bytes exceeds the {max_bytes} limit")
    return transaction_from_dict(_decode(payload))
