"""Label records on the ``labels`` topic: analyst or back-office feedback on a transaction.

Key ``tx_id``; value ``{"tx_id", "label": "fraud"|"legit", "counterparty_id"?, "source", "ts"}``
with ``ts`` in epoch milliseconds. The web view writes them, the labels agent reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from models.transaction import MAX_TS_MS

LABEL_VALUES = ("fraud", "legit")
MAX_LABEL_BYTES = 4096
#: How far ahead of the worker's clock a label's ``ts`` may be. A label counts in the day it
#: arrived, and a later day moves the counterparty's 30-day window: one label dated in the
#: far future would push every real one out of it.
MAX_LABEL_AHEAD_MS = 86_400_000


class LabelError(ValueError):
    """A label record that cannot be used; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Label:
    """One verdict on one transaction."""

    tx_id: str
    label: str
    ts_ms: int
    source: str = "unknown"
    counterparty_id: str | None = None
    account_id: str | None = None
    #: Event time of the labelled transaction, when the sender knows it.
    tx_ts_ms: int | None = None

    @property
    def is_fraud(self) -> bool:
        """Tell whether the verdict is fraud."""
        return self.label == "fraud"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (optional fields only when set)."""
        doc: dict[str, Any] = {
            "tx_id": self.tx_id,
            "label": self.label,
            "source": self.source,
            "ts": self.ts_ms,
        }
        if self.counterparty_id is not None:
            doc["counterparty_id"] = self.counterparty_id
        if self.account_id is not None:
            doc["account_id"] = self.account_id
        if self.tx_ts_ms is not None:
            doc["tx_ts"] = self.tx_ts_ms
        return doc

    def to_bytes(self) -> bytes:
        """Serialize for the ``labels`` topic."""
        return orjson.dumps(self.to_dict())


def _text(doc: dict[str, Any], name: str, required: bool, limit: int = 256) -> str | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise LabelError(name, "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise LabelError(name, "must be a non-empty string")
    if len(value) > limit:
        raise LabelError(name, f"is longer than {limit} characters")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise LabelError(name, "holds a lone surrogate (not valid Unicode)") from None
    return value


def _millis(doc: dict[str, Any], name: str, required: bool) -> int | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise LabelError(name, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LabelError(name, "must be epoch milliseconds (a finite number)")
    if isinstance(value, float) and not math.isfinite(value):
        raise LabelError(name, "must be epoch milliseconds (a finite number)")
    if value < 0:
        raise LabelError(name, "must not be negative")
    if value >= MAX_TS_MS:  # compared as is: a 400-digit integer is no float
        raise LabelError(name, "is after 2100 (milliseconds sent as microseconds?)")
    return int(value)


def label_from_dict(doc: Any, default_ts_ms: int | None = None) -> Label:
    """Validate a decoded label; ``default_ts_ms`` fills a missing ``ts``."""
    if not isinstance(doc, dict):
        raise LabelError("payload", "must be a JSON object")
    tx_id = _text(doc, "tx_id", True)
    label = doc.get("label")
    if label not in LABEL_VALUES:
        raise LabelError("label", f"must be one of {', '.join(LABEL_VALUES)}")
    ts = _millis(doc, "ts", default_ts_ms is None)
    assert tx_id is not None
    return Label(
        tx_id=tx_id,
        label=str(label),
        ts_ms=int(ts if ts is not None else default_ts_ms or 0),
        source=_text(doc, "source", False, 64) or "unknown",
        counterparty_id=_text(doc, "counterparty_id", False),
        account_id=_text(doc, "account_id", False),
        tx_ts_ms=_millis(doc, "tx_ts", False),
    )


def check_label_time(label: Label, now_ms: int) -> None:
    """Refuse a label dated more than :data:`MAX_LABEL_AHEAD_MS` after ``now_ms``."""
    if label.ts_ms > now_ms + MAX_LABEL_AHEAD_MS:
        raise LabelError("ts", "is more than a day in the future")


def parse_label(raw: bytes | None) -> Label:
    """Parse a ``labels`` topic value."""
    if raw is None:
        raise LabelError("payload", "is empty")
    if len(raw) > MAX_LABEL_BYTES:
        raise LabelError("payload", f"is larger than {MAX_LABEL_BYTES} bytes")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LabelError("payload", f"is not JSON ({exc})") from None
    return label_from_dict(doc)
