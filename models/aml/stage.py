"""The AML step of one account micro-batch, so the pipeline needs only a few hook lines.

Per transaction, in the batch's order: :meth:`AccountAmlBatch.evaluate` right after
``update_account`` (same state object, so the AML state rides in the same table write), then
:meth:`AccountAmlBatch.decide` once the model tier is known, then
:meth:`AccountAmlBatch.forward_records` for the fan-in stage. The snapshot of rules and lists
is taken once per batch: a reload never splits a batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from models.aml.fanin import count_fanin, final_decision
from models.aml.forward import forward_record
from models.aml.lists import Decision, decide
from models.aml.rulebook import RuleHit
from models.aml.runtime import AmlSnapshot
from models.features import AccountState
from models.transaction import Transaction


class AccountAmlBatch:
    """Rule hits and decisions of one micro-batch (index = position among valid rows)."""

    def __init__(self, snapshot: AmlSnapshot, now_ms: int, forward_topic: str) -> None:
        self.snapshot = snapshot
        self.now_ms = now_ms
        self.forward_topic = forward_topic
        self.hits: list[list[RuleHit]] = []
        self.decisions: list[Decision] = []

    def evaluate(
        self, state: AccountState, tx: Transaction, features: Sequence[float], replay: bool
    ) -> None:
        """Evaluate the account rules on ``tx`` and store the new AML state in ``state``."""
        self.hits.append(account_hits(self.snapshot, state, tx, features, replay))

    def decide(self, i: int, tx: Transaction, model_tier: str) -> Decision:
        """Return (and remember) row ``i``'s final tier, rules and whether it is alerted."""
        verdict = self.snapshot.lists.verdict(tx.account_id, tx.counterparty_id, self.now_ms)
        decision = decide(model_tier, self.hits[i], verdict)
        self.decisions.append(decision)
        return decision

    def hit_counts(self) -> Counter[str]:
        """Return how many records named each rule (for ``vigil_rule_hits_total``)."""
        counts: Counter[str] = Counter()
        for decision in self.decisions:
            for rule in decision.rules:
                counts[rule["rule_id"]] += 1
        return counts

    def forward_records(
        self,
        txs: Sequence[Transaction],
        scores: Sequence[float] | Any,
        model_version: str,
        reasons: Mapping[int, Sequence[Any]],
        features: Sequence[Sequence[float]],
    ) -> Iterator[tuple[str, bytes, bytes]]:
        """Yield ``(topic, counterparty key, value)`` for rows the fan-in stage needs.

        ``reasons`` holds the explained rows (Reason objects or dicts) by row index.
        """
        if not self.snapshot.fanin.rules:
            return
        for i, tx in enumerate(txs):
            record = self.forward_record(i, tx, scores, model_version, reasons, features)
            if record is not None:
                yield record

    def forward_record(
        self,
        i: int,
        tx: Transaction,
        scores: Sequence[float] | Any,
        model_version: str,
        reasons: Mapping[int, Sequence[Any]],
        features: Sequence[Sequence[float]],
    ) -> tuple[str, bytes, bytes] | None:
        """Return row ``i``'s ``(topic, counterparty key, value)`` if the fan-in stage needs it.

        One row at a time, so a caller can tell which row failed.
        """
        if not self.snapshot.fanin.wants(tx):
            return None
        d = self.decisions[i]
        why = [r if isinstance(r, dict) else r.to_dict() for r in reasons.get(i, ())]
        value = forward_record(
            tx,
            float(scores[i]),
            d.tier,
            model_version,
            why,
            d.rules,
            features[i],
            self.now_ms,
            d.permitted,
        )
        assert tx.counterparty_id is not None
        return self.forward_topic, tx.counterparty_id.encode(), value


def account_hits(
    snapshot: AmlSnapshot,
    state: AccountState,
    tx: Transaction,
    features: Sequence[float],
    replay: bool,
) -> list[RuleHit]:
    """Evaluate the account rules on ``tx`` and store the new AML state in ``state``.

    ``state`` is the account's state right after ``update_account``, so the AML state
    rides in the same table write (stream) or replayed state (offline).
    """
    hits, state.aml = snapshot.engine.evaluate(state.aml, tx, features, replay)
    return hits


def offline_hits(
    snapshot: AmlSnapshot,
    state: AccountState,
    cp_states: dict[str, list[Any]],
    tx: Transaction,
    features: Sequence[float],
    replay: bool = False,
) -> tuple[list[RuleHit], list[RuleHit]]:
    """Return the account and fan-in hits of one replayed transaction, as the two agents would.

    ``cp_states`` maps counterparty_id to fan-in state (updated in place, as the fan-in
    agent's table): a transaction is counted there when the account pipeline would forward
    it (``fanin.wants``) and :func:`models.aml.fanin.count_fanin` counts it.
    """
    hits = account_hits(snapshot, state, tx, features, replay)
    fanin = snapshot.fanin
    cp = tx.counterparty_id
    fanin_hits: list[RuleHit] = []
    if cp is not None and fanin.wants(tx):
        counted = count_fanin(fanin, snapshot.lists.allow.counterparties, cp_states.get(cp, []), tx)
        if counted is not None:
            fanin_hits, cp_states[cp] = counted
    return hits, fanin_hits


def evaluate_offline(
    snapshot: AmlSnapshot,
    state: AccountState,
    cp_states: dict[str, list[Any]],
    tx: Transaction,
    features: Sequence[float],
    model_tier: str,
    now_ms: int | None = None,
    replay: bool = False,
) -> tuple[Decision, list[RuleHit]]:
    """Evaluate account and fan-in rules and the lists for one transaction, in one call.

    For replays of a file in event-time order: see :func:`offline_hits` for the states.
    Suppressions expire at ``now_ms`` (default: the event time). Returns the final decision
    (:func:`models.aml.fanin.final_decision`: tier, ``rules``, alert or not) and every rule
    hit before the lists, each with its ``rule_id`` for per-rule counts. An alert the rules
    added beyond the model alone is ``decision.alert`` with a ``model_tier`` of ``MINIMAL``.
    """
    hits, fanin_hits = offline_hits(snapshot, state, cp_states, tx, features, replay)
    at = tx.ts_ms if now_ms is None else now_ms
    verdict = snapshot.lists.verdict(tx.account_id, tx.counterparty_id, at)
    return final_decision(model_tier, hits, fanin_hits, verdict), hits + fanin_hits
