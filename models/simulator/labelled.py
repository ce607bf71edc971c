"""A simulated transaction with its ground truth, and the scheduled steps of scenarios.

The label never goes into the transaction document: it travels next to it in
:class:`SimulatedTx`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SimulatedTx:
    """One simulated transaction: the JSON document plus its ground truth, kept apart."""

    tx: dict[str, Any]
    label: int  # 1 = fraud, 0 = legit
    pattern: str  # one of PATTERNS


@dataclass(slots=True)
class _Step:
    """A scheduled scenario transaction, turned into a document when its time comes."""

    account: int
    pattern: str
    kind: str
    label: int
    amount: int = 0  # cents; for drains the fraction of the balance is in ``fraction``
    fraction: float = 0.0
    counterparty: str = ""
    category: str | None = None
    tx_type: str = "CARD"
    channel: str = "online"
    country: str | None = None
    device: str | None = None
    breached_merchant: int = -1  # a visit to a breached merchant: its index (abuse follows)
    backdate_ms: int = 0  # emitted with an event time this far before its turn (late event)
    extra: dict[str, Any] | None = None  # more fields for the document


def _account_id(index: int) -> str:
    return f"acc-{index:06d}"


def _device_id(bits: int) -> str:
    return f"dev-{bits & 0xFFFFFFFFFF:010x}"
