"""Offline event-time replay: the stream's state updates, run over a file without a broker.

Training and backtests walk transactions in event-time order through
:func:`models.decision.featurise` (the step the stream's batch decision runs) and reveal
each label only ``label_delay`` after its transaction, into the same per-counterparty risk
state the labels agent keeps. So a feature never sees a label the stream would not have had.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from models.counterparty_risk import CounterpartyRisk, apply_label
from models.decision import featurise
from models.features import AccountState
from models.transaction import Transaction

DAY_MS = 86_400_000
DEFAULT_LABEL_DELAY_DAYS = 7.0


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """A label as the labels topic would carry it: arrival time, counterparty, verdict."""

    ts_ms: int
    counterparty_id: str
    tx_id: str
    is_fraud: bool


@dataclass(slots=True)
class ReplayStep:
    """What the stream would compute for one transaction."""

    features: list[float]
    state: AccountState
    #: The transaction was applied already (same ``tx_id``): scored again, not counted again.
    replayed: bool


@dataclass(slots=True)
class Replayer:
    """Per-account and per-counterparty state of an event-time replay.

    ``label_delay_ms`` is how long after a transaction its label arrives; ``None`` means the
    labels in the data are never revealed (only :meth:`add_label` events are).
    """

    label_delay_ms: int | None = int(DEFAULT_LABEL_DELAY_DAYS * DAY_MS)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    counterparties: dict[str, CounterpartyRisk] = field(default_factory=dict)
    _pending: list[tuple[int, int, str, str, bool]] = field(default_factory=list)
    _seq: int = 0

    def add_label(self, event: LabelEvent) -> None:
        """Queue a label; it is applied before the first transaction at or after its time."""
        self._seq += 1
        item = (event.ts_ms, self._seq, event.counterparty_id, event.tx_id, event.is_fraud)
        heapq.heappush(self._pending, item)

    def reveal_until(self, ts_ms: int) -> None:
        """Apply every queued label that has arrived by ``ts_ms``."""
        pending = self._pending
        risks = self.counterparties
        while pending and pending[0][0] <= ts_ms:
            arrived, _, cp, tx_id, fraud = heapq.heappop(pending)
            risks[cp], _ = apply_label(risks.get(cp), tx_id, fraud, arrived)

    def step(self, tx: Transaction, label: int | None = None) -> ReplayStep:
        """Featurise ``tx`` as the agent would, then schedule its label's arrival."""
        self.reveal_until(tx.ts_ms)
        cp = tx.counterparty_id
        features, state, replayed = featurise(
            self.accounts.get(tx.account_id),
            tx,
            self.counterparties.get(cp) if cp is not None else None,
        )
        self.accounts[tx.account_id] = state
        if label is not None and cp is not None and self.label_delay_ms is not None:
            self.add_label(LabelEvent(tx.ts_ms + self.label_delay_ms, cp, tx.tx_id, label == 1))
        return ReplayStep(features, state, replayed)
