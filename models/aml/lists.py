"""Allow list, deny list and per-account suppressions, and the final decision on a transaction.

Files are TOML so an analyst can comment them and errors can point at a line:

* allow / deny list: ``accounts = ["acc-1", ...]`` and ``counterparties = ["m-9", ...]``;
* suppressions: ``[[suppression]]`` tables with ``account``, ``until`` (a TOML date-time with
  a time zone, or epoch milliseconds) and an optional ``reason``.

Precedence: the deny list wins over everything (always HIGH, always alerted); then the allow
list (still scored, with the model's tier, but no rules and no alerts); then suppression (rules
and tier as usual on ``transactions.scored``, but no alert until the expiry).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.aml.rulebook import RulebookError, RuleHit, load_toml, short_repr
from models.tiers import TIERS, escalate

DENY_RULE_ID = "deny_list"


@dataclass(frozen=True, slots=True)
class IdList:
    """Accounts and counterparties named in an allow or deny list file."""

    accounts: frozenset[str] = frozenset()
    counterparties: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Suppression:
    """No alerts for ``account`` until ``until_ms`` (epoch ms, exclusive)."""

    account: str
    until_ms: int
    reason: str = ""


def _ids(path: Path, doc: Mapping[str, Any], key: str) -> frozenset[str]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise RulebookError(f"{path}: {key}: must be a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise RulebookError(
                f"{path}: {key}[{i}]: must be a non-empty string, got {short_repr(item)}"
            )
    return frozenset(value)


def load_id_list(path: Path) -> IdList:
    """Read an allow or deny list file."""
    doc = load_toml(path)
    unknown = sorted(set(doc) - {"accounts", "counterparties"})
    if unknown:
        raise RulebookError(
            f"{path}: unknown key {short_repr(unknown[0])}; use accounts, counterparties"
        )
    return IdList(_ids(path, doc, "accounts"), _ids(path, doc, "counterparties"))


#: Latest expiry a suppression may name (the end of year 9999), in epoch milliseconds.
MAX_UNTIL_MS = 253_402_300_799_999


def _until_ms(value: Any) -> int | None:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return int(value.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UNTIL_MS:
        return value
    return None


def load_suppressions(path: Path) -> dict[str, Suppression]:
    """Read a suppressions file: account -> the suppression that ends last."""
    doc = load_toml(path)
    unknown = sorted(set(doc) - {"suppression"})
    if unknown:
        raise RulebookError(
            f"{path}: unknown key {short_repr(unknown[0])}; use [[suppression]] tables"
        )
    items = doc.get("suppression", [])
    if not isinstance(items, list):
        raise RulebookError(f"{path}: suppression: must be an array of tables ([[suppression]])")
    out: dict[str, Suppression] = {}
    for i, item in enumerate(items, start=1):
        where = f"{path}: suppression #{i}"
        if not isinstance(item, dict):
            raise RulebookError(f"{where}: must be a table")
        account = item.get("account")
        if not isinstance(account, str) or not account.strip():
            raise RulebookError(f"{where}: account: required, a non-empty string")
        where = f"{where} (account {short_repr(account)})"
        extra = sorted(set(item) - {"account", "until", "reason"})
        if extra:
            raise RulebookError(f"{where}: unknown key {short_repr(extra[0])}")
        until = _until_ms(item.get("until"))
        if until is None:
            raise RulebookError(
                f"{where}: until: required, a date-time with a time zone "
                "(2026-12-31T00:00:00Z) or epoch milliseconds"
            )
        reason = item.get("reason", "")
        if not isinstance(reason, str):
            raise RulebookError(f"{where}: reason: must be a string")
        if account not in out or out[account].until_ms < until:
            out[account] = Suppression(account, until, reason)
    return out


@dataclass(frozen=True, slots=True)
class ListVerdict:
    """What the lists say about one transaction."""

    denied: tuple[RuleHit, ...] = ()
    allowed: bool = False
    suppressed_until_ms: int | None = None


_CLEAR = ListVerdict()


@dataclass(frozen=True, slots=True)
class Lists:
    """One consistent snapshot of the allow list, deny list and suppressions."""

    allow: IdList = field(default_factory=IdList)
    deny: IdList = field(default_factory=IdList)
    suppressions: Mapping[str, Suppression] = field(default_factory=dict)

    def verdict(self, account_id: str, counterparty_id: str | None, now_ms: int) -> ListVerdict:
        """Return the verdict for a transaction; suppressions expire at ``now_ms``."""
        deny, allow, sup = self.deny, self.allow, self.suppressions
        denied: list[RuleHit] = []
        if account_id in deny.accounts:
            denied.append(
                RuleHit(DENY_RULE_ID, "HIGH", f"account {account_id} is on the deny list")
            )
        if counterparty_id is not None and counterparty_id in deny.counterparties:
            denied.append(
                RuleHit(DENY_RULE_ID, "HIGH", f"counterparty {counterparty_id} is on the deny list")
            )
        allowed = account_id in allow.accounts or (
            counterparty_id is not None and counterparty_id in allow.counterparties
        )
        s = sup.get(account_id) if sup else None
        until = s.until_ms if s is not None and now_ms < s.until_ms else None
        if not denied and not allowed and until is None:
            return _CLEAR
        return ListVerdict(tuple(denied), allowed, until)


@dataclass(frozen=True, slots=True)
class Decision:
    """The final tier of a transaction, the ``rules`` of its records and whether to alert."""

    tier: str
    rules: list[dict[str, str]]
    alert: bool
    #: The lists allow alerts for this transaction (not allow-listed nor suppressed, or denied).
    permitted: bool = True


def decide(model_tier: str, hits: Sequence[RuleHit], verdict: ListVerdict) -> Decision:
    """Combine the model's tier, the rule hits and the lists' verdict (see module doc)."""
    if verdict.denied:
        rules = [h.to_dict() for h in (*verdict.denied, *hits)]
        return Decision("HIGH", rules, True)
    if verdict.allowed:
        return Decision(model_tier, [], False, False)
    if not hits and verdict is _CLEAR:
        plain = _PLAIN.get(model_tier)
        if plain is not None:
            return plain  # the common case: nothing to add to the model's tier
    tier = escalate(model_tier, [h.tier for h in hits]) if hits else model_tier
    rules = [h.to_dict() for h in hits]
    permitted = verdict.suppressed_until_ms is None
    return Decision(tier, rules, permitted and tier != "MINIMAL", permitted)


#: Decisions of transactions no rule or list touched, one per model tier (they are frozen,
#: and nothing changes a record's ``rules`` list after it is built).
_PLAIN = {t: Decision(t, [], t != "MINIMAL", True) for t in TIERS}
