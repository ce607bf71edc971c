"""Helpers for the AML unit tests: build transactions, replay them through the real path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.aml import FanInEngine, RuleEngine, RuleHit, load_rulebook
from models.aml.rulebook import Rulebook, parse_rulebook
from models.features import AccountState, update_account
from models.transaction import Transaction, transaction_from_dict

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "models" / "aml" / "default_rules.toml"
#: The rules each typology of the simulator must trigger (at least one of them).
TYPOLOGY_RULES: dict[str, set[str]] = {
    "structuring": {"structuring_24h", "structuring_7d", "structuring_daily_total"},
    "mule_fan_in": {"fan_in_mule"},
    "pass_through": {"rapid_pass_through"},
    "fan_out": {"fan_out_new_counterparties"},
    "dormant_reactivation": {"dormant_reactivation"},
    "round_amount": {"round_amount"},
    "high_risk_jurisdiction": {"high_risk_jurisdiction"},
}
T0 = 1_709_542_800_000  # 2024-03-04T09:00:00Z
HOUR = 3_600_000
DAY = 24 * HOUR


def default_rulebook() -> Rulebook:
    return load_rulebook(DEFAULT_RULES)


def only(rule_id: str) -> Rulebook:
    """The default rulebook reduced to one rule."""
    book = default_rulebook()
    return Rulebook(tuple(r for r in book.rules if r.id == rule_id), "test")


def rulebook(doc: dict[str, Any]) -> Rulebook:
    return parse_rulebook(doc, "test.toml")


_seq = iter(range(10**9))


def tx(account: str, ts: int, amount: float, **kw: Any) -> Transaction:
    doc: dict[str, Any] = {
        "tx_id": kw.pop("tx_id", f"t{next(_seq)}"),
        "ts": ts,
        "account_id": account,
        "amount": amount,
    }
    doc.update(kw)
    return transaction_from_dict(doc)


def cash(account: str, ts: int, amount: float, channel: str = "branch") -> Transaction:
    return tx(account, ts, amount, type="CASH_IN", channel=channel, counterparty_id="branch-1")


class Replayer:
    """Account and counterparty state kept like the streaming agents keep it."""

    def __init__(self, book: Rulebook) -> None:
        self.engine = RuleEngine(book)
        self.fanin = FanInEngine(book)
        self.accounts: dict[str, AccountState] = {}
        self.cps: dict[str, list[Any]] = {}

    def feed(self, t: Transaction) -> list[RuleHit]:
        state = self.accounts.get(t.account_id)
        before = state.n if state is not None else 0
        features, state = update_account(state, t)
        self.accounts[t.account_id] = state
        replay = state.n == before
        hits, state.aml = self.engine.evaluate(state.aml, t, features, replay)
        if self.fanin.wants(t):
            assert t.counterparty_id is not None
            cp_hits, self.cps[t.counterparty_id] = self.fanin.evaluate(
                self.cps.get(t.counterparty_id, []), t
            )
            hits = hits + cp_hits
        return hits

    def feed_all(self, txs: list[Transaction]) -> list[list[RuleHit]]:
        return [self.feed(t) for t in txs]


def ids(hits: list[RuleHit]) -> set[str]:
    return {h.rule_id for h in hits}
