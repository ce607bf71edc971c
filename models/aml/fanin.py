"""The fan-in decision, written once: which transactions count, and how a hit changes a decision.

The stream makes it in two agents: the account pipeline decides a transaction's tier, rules and
whether alerts are permitted (:func:`models.aml.lists.decide`) and forwards it by
counterparty; the fan-in agent counts its sender (:func:`count_fanin`) and, on a hit, raises
that decision (:func:`escalate_fanin`). The offline replay calls the same two functions
through :func:`final_decision`, so a backtest alerts exactly where the two agents would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.aml.engine import FanInEngine
from models.aml.lists import Decision, ListVerdict, decide
from models.aml.rulebook import RuleHit
from models.redelivery import InputPosition
from models.tiers import escalate
from models.transaction import Transaction


def counted(tx: Transaction, allowed: frozenset[str]) -> bool:
    """Tell whether the fan-in stage counts ``tx``: it names a counterparty not allow-listed."""
    return tx.counterparty_id is not None and tx.counterparty_id not in allowed


def count_fanin(
    fanin: FanInEngine,
    allowed: frozenset[str],
    cp_state: list[Any],
    tx: Transaction,
    pos: InputPosition | None = None,
) -> tuple[list[RuleHit], list[Any]] | None:
    """Count ``tx``'s sender for its counterparty; return the hits and the new state.

    None when nothing is counted: no counterparty, or an allow-listed one. A replay
    (``models.redelivery``) is evaluated again (same hits) but not counted twice.
    """
    if not counted(tx, allowed):
        return None
    replay = fanin.is_replay(cp_state, tx, pos)
    return fanin.evaluate(cp_state, tx, replay, pos)


def escalate_fanin(decision: Decision, hits: Sequence[RuleHit]) -> Decision | None:
    """Return the decision raised by fan-in ``hits``, None when they add no alert.

    The alert keeps its tier or goes higher and its ``rules`` grow: consumers keep the latest
    alert per ``alert_id``. Lists that forbid alerts (``decision.permitted`` false) win.
    """
    if not hits or not decision.permitted:
        return None
    tier = escalate(decision.tier, [h.tier for h in hits])
    return Decision(tier, [*decision.rules, *(h.to_dict() for h in hits)], True, True)


def final_decision(
    model_tier: str,
    hits: Sequence[RuleHit],
    fanin_hits: Sequence[RuleHit],
    verdict: ListVerdict,
) -> Decision:
    """Return a transaction's decision after both stages: account rules, lists, fan-in."""
    decision = decide(model_tier, hits, verdict)
    return escalate_fanin(decision, fanin_hits) or decision
