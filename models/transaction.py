"""The Transaction record and its validation (pure code, no Faust).

Validation is strict and names the field that is wrong, so the dead-letter topic tells the
producer team exactly what to fix. Unknown fields are kept in :attr:`Transaction.raw`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson

SCHEMA_VERSION = 1

TX_TYPES = frozenset({"PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT", "CARD"})
#: Event times outside this range are almost surely a unit error (seconds vs ms).
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_ID_CHARS = 256
#: Largest amount or absolute balance accepted (``VIGIL_MAX_AMOUNT`` overrides it). Sums of
#: 30 days of such amounts stay far inside float32, which the model scores.
DEFAULT_MAX_AMOUNT = 1e12
#: Deepest nesting of arrays and objects in a message. Both parsers and ``orjson.dumps``
#: (254 levels) recurse; a bound far below theirs is checked on the raw bytes first.
MAX_JSON_DEPTH = 64
#: Integers a message may hold anywhere: what ``orjson.dumps`` can write back (64 bits).
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**64 - 1
#: The Transaction's fields, in schema order (file import reads these columns too).
TRANSACTION_FIELDS = (
    "tx_id",
    "ts",
    "account_id",
    "amount",
    "counterparty_id",
    "currency",
    "type",
    "channel",
    "country",
    "device_id",
    "merchant_category",
    "balance_before",
    "balance_after",
)
#: Fields of the schema: their own names are dead-letter reasons (a metric label); any other
#: field is reported as ``other_field`` so a producer cannot mint label values.
SCHEMA_FIELDS = frozenset({"payload", *TRANSACTION_FIELDS})

#: Plain decimal strings only: float() would also take "nan", "inf", "1_000" and spaces.
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
#: A JSON string, or an unterminated one up to the end: it always matches once started, so
#: a scan over hostile input stays linear.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


class ValidationError(ValueError):
    """A message is not a valid Transaction; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    @property
    def reason(self) -> str:
        """Return the short machine-friendly reason code used as a metric label."""
        return self.field if self.field in SCHEMA_FIELDS else "other_field"


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


def nesting_depth(payload: bytes) -> int:
    """Return how deep arrays and objects nest in a JSON text (brackets in strings ignored).

    Linear and without recursion, so it can run before any parser does.
    """
    bare = _JSON_STRING.sub(b"", payload)
    codes = np.frombuffer(bare, dtype=np.uint8)
    steps = np.isin(codes, _OPEN).astype(np.int64) - np.isin(codes, _CLOSE)
    return int(np.cumsum(steps).max(initial=0))


def _check_depth(payload: bytes) -> None:
    # Nesting is at most the number of opening brackets: a plain message has a handful, and
    # two counts in C are all it costs.
    if payload.count(b"[") + payload.count(b"{") <= MAX_JSON_DEPTH:
        return
    depth = nesting_depth(payload)
    if depth > MAX_JSON_DEPTH:
        raise ValidationError("payload", f"nested {depth} deep, more than {MAX_JSON_DEPTH}")


def _encodable(text: str) -> bool:
    """Tell whether ``text`` is valid Unicode (no lone surrogate), i.e. encodes as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _field_name(name: str) -> str:
    return name if len(name) <= 64 else name[:61] + "..."


def _check_document(doc: Any) -> None:
    """Refuse what the stdlib parser reads but Vigil cannot hash, key or write back.

    Lone surrogates, non-finite numbers and integers beyond 64 bits, anywhere in the
    document; the error names the top-level field that holds one.
    """
    queue: deque[tuple[Any, str]] = deque([(doc, "payload")])
    while queue:
        value, name = queue.popleft()
        kind = type(value)
        if kind is str:
            if not value.isascii() and not _encodable(value):
                raise ValidationError(name, "holds a lone surrogate (not valid Unicode)")
        elif kind is int:
            if not MIN_JSON_INT <= value <= MAX_JSON_INT:
                raise ValidationError(name, "integer beyond 64 bits")
        elif kind is float:
            if not math.isfinite(value):
                raise ValidationError(name, "must be finite (NaN and infinity are refused)")
        elif kind is dict:
            for key, item in value.items():
                if not _encodable(key):
                    raise ValidationError("payload", "a field name is not valid Unicode")
                queue.append((item, _field_name(key) if value is doc else name))
        elif kind is list:
            queue.extend((item, name) for item in value)


def _decode(payload: bytes) -> Any:
    _check_depth(payload)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses NaN/Infinity literals, lone surrogates and numbers beyond a double; the
    # stdlib parser reads them so that the error can name the field that holds one.
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError("payload", f"not valid JSON ({str(exc)[:200]})") from None
    _check_document(doc)
    return doc


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
    if not value.isascii() and not _encodable(value):
        raise ValidationError(name, "holds a lone surrogate (not valid Unicode)")
    return value


def _optional_str(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None or (type(value) is str and len(value) <= MAX_ID_CHARS and value.isascii()):
        return value  # the common case, checked first: this runs per field per message
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, got {type(value).__name__}")
    if len(value) > MAX_ID_CHARS:
        raise ValidationError(name, f"longer than {MAX_ID_CHARS} characters")
    if not _encodable(value):
        raise ValidationError(name, "holds a lone surrogate (not valid Unicode)")
    return value


def _number(doc: dict[str, Any], name: str, *, required: bool, limit: float) -> float | None:
    """Return a finite number within ``-limit..limit`` (the caller checks the sign)."""
    value = doc.get(name)
    if type(value) is float and -limit <= value <= limit:  # the common case (NaN fails too)
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
    if not -limit <= number <= limit:
        raise ValidationError(name, f"beyond {limit:g} in size (VIGIL_MAX_AMOUNT)")
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
    if isinstance(value, int):
        ts_ms, offset_s = value, 0  # compared as an integer: a 400-digit one is no float
    elif isinstance(value, float):
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
        try:
            ts_ms = int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError):
            raise ValidationError("ts", f"date out of range {value[:40]!r}") from None
        offset_s = int(offset.total_seconds())
    else:
        raise ValidationError("ts", f"must be a string or a number, got {type(value).__name__}")
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        digits = str(abs(ts_ms))
        shown = str(ts_ms) if len(digits) <= 16 else f"a {len(digits)}-digit number of"
        raise ValidationError("ts", f"{shown} ms is outside 2000..2100 (seconds sent as ms?)")
    return ts_ms, offset_s


def transaction_from_dict(doc: Any, max_amount: float = DEFAULT_MAX_AMOUNT) -> Transaction:
    """Validate a decoded JSON document; raise :class:`ValidationError` naming the field.

    ``amount`` must be within ``0..max_amount``, balances within ``-max_amount..max_amount``.
    """
    if not isinstance(doc, dict):
        raise ValidationError("payload", f"must be a JSON object, got {type(doc).__name__}")
    tx_id = _required_id(doc, "tx_id")
    ts_ms, offset_s = _timestamp(doc)
    account_id = _required_id(doc, "account_id")
    amount = _number(doc, "amount", required=True, limit=max_amount)
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
        balance_before=_number(doc, "balance_before", required=False, limit=max_amount),
        balance_after=_number(doc, "balance_after", required=False, limit=max_amount),
        raw=doc,
    )


def tx_hash(tx_id: str) -> int:
    """Return a stable 63-bit hash of a transaction id (fits a signed JSON integer).

    The replay memories (account state, fan-in state, counterparty labels) store these.
    """
    digest = hashlib.blake2b(tx_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def parse_transaction(
    payload: bytes | None, max_bytes: int, max_amount: float = DEFAULT_MAX_AMOUNT
) -> Transaction:
    """Decode and validate one message value; raise :class:`ValidationError` if unusable."""
    if payload is None:
        raise ValidationError("payload", "message has no value")
    if len(payload) > max_bytes:
        raise ValidationError("payload", f"{len(payload)} bytes exceeds the {max_bytes} limit")
    return transaction_from_dict(_decode(payload), max_amount)
