"""Rule evaluation: pure functions of (state, transaction) -> (hits, new state).

**Account rules** (:class:`RuleEngine`) keep their state in ``AccountState.aml``, stored with
the velocity state in the same table value, as the JSON list
``[AML_FORMAT, last_tx_hash, last_gap_s, {"rule_id@width": buckets}]``. **Counterparty rules**
(:class:`FanInEngine`) keep theirs per counterparty as
``[CP_FORMAT, [recent tx hashes], {key: [[sender_crc, last_ts_ms], ...]}, {key: buckets},
{input topic: last applied offset}]``, where ``key`` is ``"<rule_id>@<bucket width>"`` (a
reload that changes the width restarts it); states written before the offsets have four items.
Replays are recognised by input offset, then by id (:mod:`models.redelivery`).

Bounded: a rule's buckets are ``[index, value...]`` lists, hourly for windows up to 72 h and
daily beyond, and buckets that leave the window are dropped; fan-in keeps at most
:data:`MAX_SENDERS` senders per rule (least recently seen evicted) and :data:`CP_SEEN_TX`
transaction hashes. State of a rule removed from the rules file is dropped at its account's
next transaction.

**Replays.** Every condition is evaluated on the state *after* the transaction, so a replay
(``replay=True``: the state already holds it) is evaluated without applying it again and gives
the same hits, with one exception each: ``fan_out`` cannot tell any more whether the
counterparty was new (it counts it as new), and ``dormant`` knows the gap only when the replay
is the account's latest transaction. Fan-in counts the senders of the counterparty's latest
window (senders reach that stage out of event-time order), so a replayed payment is judged
with the senders that arrived after it and may be alerted where its first pass was not.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from models import windows
from models.aml.rulebook import Rule, Rulebook, RuleHit, fmt_window
from models.features import FEATURE_NAMES
from models.redelivery import InputPosition, advance, already_applied
from models.transaction import Transaction

AML_FORMAT = 1
CP_FORMAT = 1
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MAX_SENDERS = 128
CP_SEEN_TX = 64

_I_NEW_CP = FEATURE_NAMES.index("new_counterparty")
_I_SINCE_PREV = FEATURE_NAMES.index("secs_since_prev")


def _grain(window_hours: int) -> tuple[int, int]:
    """Return ``(bucket_ms, slots)`` of a window: hourly up to 72 h, else daily."""
    if window_hours <= 72:
        return HOUR_MS, window_hours
    return DAY_MS, math.ceil(window_hours / 24)


@dataclass(frozen=True, slots=True)
class _Window:
    """A rule's time window, worked out once per rulebook rather than per transaction.

    ``key`` names the rule's state: its id and bucket width, so a reload that moves
    ``window_hours`` across 72 h starts the state afresh (old buckets would be misread) and
    the old key is dropped as unknown.
    """

    key: str
    width: int
    slots: int

    @classmethod
    def of(cls, rule: Rule) -> _Window:
        width, slots = _grain(rule.params.get("window_hours", 0))
        return cls(f"{rule.id}@{width // HOUR_MS}h", width, slots)

    def add(self, st: dict[str, Any], ts_ms: int, values: Sequence[float]) -> None:
        """Add ``values`` to the bucket of ``ts_ms`` in this rule's state."""
        windows.add(st.setdefault(self.key, []), ts_ms // self.width, values, self.slots)

    def count(
        self, st: dict[str, Any], ts_ms: int, add: Sequence[float] | None, n: int
    ) -> list[float]:
        """Add ``add`` (unless None) at ``ts_ms``; return the ``n`` sums of its window."""
        if add is not None:
            self.add(st, ts_ms, add)
        buckets = st.get(self.key, [])
        return windows.sums(buckets, ts_ms // self.width, self.slots, n, newest_first=False)


def _type_ok(types: frozenset[str], tx: Transaction) -> bool:
    return not types or (tx.type is not None and tx.type in types)


def _channel_ok(channels: tuple[str, ...], tx: Transaction) -> bool:
    return not channels or (tx.channel is not None and tx.channel in channels)


_Check = Callable[
    [Rule, _Window, Transaction, Sequence[float], bool, dict[str, Any], float | None],
    RuleHit | None,
]


def _structuring(
    rule: Rule,
    w: _Window,
    tx: Transaction,
    feats: Sequence[float],
    replay: bool,
    st: dict[str, Any],
    gap_s: float | None,
) -> RuleHit | None:
    p = rule.params
    amount = tx.amount
    if not (p["lower"] <= amount < p["threshold"]):
        return None
    if not (_type_ok(p["types"], tx) and _channel_ok(p["channels"], tx)):
        return None
    count, total = w.count(st, tx.ts_ms, None if replay else (1.0, amount), 2)
    if count < p["min_count"]:
        return None
    threshold = p["threshold"]
    upper = math.ceil(threshold) - 1 if threshold == math.floor(threshold) else threshold
    return rule.hit(
        count=int(count),
        lower=p["lower"],
        upper=upper,
        threshold=threshold,
        window=fmt_window(p["window_hours"]),
        total=total,
        amount=amount,
    )


def _structuring_total(
    rule: Rule,
    w: _Window,
    tx: Transaction,
    feats: Sequence[float],
    replay: bool,
    st: dict[str, Any],
    gap_s: float | None,
) -> RuleHit | None:
    p = rule.params
    if not (_type_ok(p["types"], tx) and _channel_ok(p["channels"], tx)):
        return None
    amount = tx.amount
    threshold = p["threshold"]
    piece = amount < threshold
    add = None if replay else ((1.0, amount, 0.0) if piece else (0.0, 0.0, 1.0))
    count, total, over = w.count(st, tx.ts_ms, add, 3)
    if not piece:
        return None
    if over > 0 or count < p["min_count"] or total < threshold:
        return None
    return rule.hit(
        count=int(count),
        threshold=threshold,
        window=fmt_window(p["window_hours"]),
        total=total,
        amount=amount,
    )


def _pass_through(
    rule: Rule,
    w: _Window,
    tx: Transaction,
    feats: Sequence[float],
    replay: bool,
    st: dict[str, Any],
    gap_s: float | None,
) -> RuleHit | None:
    p = rule.params
    tx_type = tx.type
    is_in = tx_type in p["in_types"]
    is_out = tx_type in p["out_types"]
    if not (is_in or is_out):
        return None
    amount = tx.amount
    add = None if replay else (amount if is_in else 0.0, amount if is_out else 0.0)
    in_total, out_total = w.count(st, tx.ts_ms, add, 2)
    if not is_out:
        return None
    if in_total < p["min_in"] or in_total <= 0:
        return None
    ratio = out_total / in_total
    if not p["min_ratio"] <= ratio <= p["max_ratio"]:
        return None
    return rule.hit(
        in_total=in_total,
        out_total=out_total,
        ratio=f"{ratio:.0%}",
        window=fmt_window(p["window_hours"]),
        amount=amount,
    )


def _fan_out(
    rule: Rule,
    w: _Window,
    tx: Transaction,
    feats: Sequence[float],
    replay: bool,
    st: dict[str, Any],
    gap_s: float | None,
) -> RuleHit | None:
    p = rule.params
    if tx.counterparty_id is None or tx.amount < p["min_amount"] or not _type_ok(p["types"], tx):
        return None
    # A replay's features describe the state that already holds it: count it as new.
    if not replay and feats[_I_NEW_CP] != 1.0:
        return None
    count, total = w.count(st, tx.ts_ms, None if replay else (1.0, tx.amount), 2)
    if count < p["min_new"]:
        return None
    return rule.hit(
        count=int(count), window=fmt_window(p["window_hours"]), total=total, amount=tx.amount
    )


def _dormant(
    rule: Rule,
    w: _Window,
    tx: Transaction,
    feats: Sequence[float],
    replay: bool,
    st: dict[str, Any],
    gap_s: float | None,
) -> RuleHit | None:
    p = rule.params
    if gap_s is None or tx.amount < p["min_amount"] or not _type_ok(p["types"], tx):
        return None
    days = gap_s / 86_400.0
    if days < p["min_days"]:
        return None
    return rule.hit(days=math.floor(days), amount=tx.amount)


def _round_amount(
    rule: Rule,
    w: _Window,
    tx: Transaction,
    feats: Sequence[float],
    replay: bool,
    st: dict[str, Any],
    gap_s: float | None,
) -> RuleHit | None:
    p = rule.params
    amount = tx.amount
    if amount < p["min_amount"] or not _type_ok(p["types"], tx):
        return None
    multiples = amount / p["multiple_of"]
    if abs(multiples - round(multiples)) > 1e-9 * max(1.0, multiples):
        return None
    return rule.hit(amount=amount, multiple=p["multiple_of"])


def _jurisdiction(
    rule: Rule,
    w: _Window,
    tx: Transaction,
    feats: Sequence[float],
    replay: bool,
    st: dict[str, Any],
    gap_s: float | None,
) -> RuleHit | None:
    p = rule.params
    if tx.amount < p["min_amount"] or not _type_ok(p["types"], tx):
        return None
    countries = p["countries"]
    for name in p["fields"]:
        value = tx.country if name == "country" else tx.raw.get(name)
        if isinstance(value, str) and value.upper() in countries:
            return rule.hit(country=value.upper(), field=name, amount=tx.amount)
    return None


_ACCOUNT_CHECKS: dict[str, _Check] = {
    "structuring": _structuring,
    "structuring_total": _structuring_total,
    "pass_through": _pass_through,
    "fan_out": _fan_out,
    "dormant": _dormant,
    "round_amount": _round_amount,
    "high_risk_jurisdiction": _jurisdiction,
}


class RuleEngine:
    """Evaluate the account-keyed rules of a rulebook (stateless itself; cheap to rebuild)."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook
        self._rules = [(r, _Window.of(r), _ACCOUNT_CHECKS[r.kind]) for r in rulebook.account_rules]
        self._ids = frozenset(w.key for _, w, _ in self._rules)

    def evaluate(
        self, aml: list[Any], tx: Transaction, features: Sequence[float], replay: bool = False
    ) -> tuple[list[RuleHit], list[Any]]:
        """Return the hits of ``tx`` and the AML state that includes it.

        ``aml`` is ``AccountState.aml`` (``[]`` for a new account) and is updated in place.
        ``features`` is the vector of :func:`models.features.update_account` for ``tx``, in
        ``FEATURE_NAMES`` order. ``replay`` says the state already holds ``tx`` (the account
        state's ``n`` did not change): it is evaluated but not counted again.
        """
        h = tx.id_hash
        state = aml if aml and aml[0] == AML_FORMAT else [AML_FORMAT, 0, None, {}]
        per_rule: dict[str, Any] = state[3]
        if replay:
            gap = state[2] if state[1] == h else None
        else:
            since = features[_I_SINCE_PREV]
            gap = None if since != since else float(since)
            state[1] = h
            state[2] = gap
        hits: list[RuleHit] = []
        for rule, window, check in self._rules:
            hit = check(rule, window, tx, features, replay, per_rule, gap)
            if hit is not None:
                hits.append(hit)
        if not (per_rule.keys() <= self._ids and all(per_rule.values())):  # rarely true
            for key in [k for k, v in per_rule.items() if not v or k not in self._ids]:
                del per_rule[key]
        return hits, state


class FanInEngine:
    """Evaluate the counterparty-keyed rules (fan-in to one beneficiary)."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook
        self.rules = rulebook.counterparty_rules
        self._windows = [(r, _Window.of(r)) for r in self.rules]
        self._ids = frozenset(w.key for _, w in self._windows)
        types: set[str] = set()
        any_type = False
        for rule in self.rules:
            any_type = any_type or not rule.params["types"]
            types |= rule.params["types"]
        #: Transaction types forwarded by counterparty (``None``: every type).
        self.forward_types: frozenset[str] | None = None if any_type else frozenset(types)

    def wants(self, tx: Transaction) -> bool:
        """Tell whether ``tx`` must be forwarded to the counterparty-keyed stage."""
        if not self.rules or tx.counterparty_id is None:
            return False
        types = self.forward_types
        return types is None or (tx.type is not None and tx.type in types)

    def is_replay(
        self, cp_state: list[Any], tx: Transaction, pos: InputPosition | None = None
    ) -> bool:
        """Tell whether ``cp_state`` already holds ``tx`` (read at ``pos``, if from a topic)."""
        if not cp_state:
            return False
        marks: dict[str, int] = cp_state[4] if len(cp_state) > 4 else {}
        return already_applied(marks, cp_state[1], tx.id_hash, pos)

    def evaluate(
        self,
        cp_state: list[Any],
        tx: Transaction,
        replay: bool | None = None,
        pos: InputPosition | None = None,
    ) -> tuple[list[RuleHit], list[Any]]:
        """Return the fan-in hits of ``tx`` for its counterparty and the state that holds it.

        ``cp_state`` is the counterparty's state (``[]`` when new), updated in place.
        ``replay`` defaults to what the state's own memory of transaction ids says.
        """
        state: list[Any] = cp_state
        if not (cp_state and cp_state[0] == CP_FORMAT):
            state = [CP_FORMAT, [], {}, {}, {}]
        elif len(state) < 5:
            state.append({})
        seen: list[int] = state[1]
        senders_by_rule: dict[str, list[list[int]]] = state[2]
        buckets_by_rule: dict[str, list[list[float]]] = state[3]
        h = tx.id_hash
        if replay is None:
            replay = self.is_replay(state, tx, pos)
        if not replay:
            seen.append(h)
            if len(seen) > CP_SEEN_TX:
                del seen[0]
            if pos is not None:
                advance(state[4], pos)
        sender = zlib.crc32(tx.account_id.encode())
        ts = tx.ts_ms
        hits: list[RuleHit] = []
        for rule, w in self._windows:
            p = rule.params
            if tx.amount < p["min_amount"] or not _type_ok(p["types"], tx):
                continue
            senders = senders_by_rule.setdefault(w.key, [])
            window_ms = p["window_hours"] * HOUR_MS
            if not replay:
                for pair in senders:
                    if pair[0] == sender:
                        pair[1] = max(pair[1], ts)
                        break
                else:
                    senders.append([sender, ts])
                # Forget senders out of the window (relative to the newest), then cap.
                newest = max(pair[1] for pair in senders)
                senders[:] = [s for s in senders if s[1] > newest - window_ms]
                if len(senders) > MAX_SENDERS:
                    senders.sort(key=lambda s: s[1])
                    del senders[: len(senders) - MAX_SENDERS]
                w.add(buckets_by_rule, ts, (1.0, tx.amount))
            # Senders reach this stage out of event-time order (they live in different
            # account partitions), so the window ends at the counterparty's newest activity.
            ref = max([ts, *(s[1] for s in senders)])
            if ts <= ref - window_ms:
                continue  # a late transaction outside the current window
            distinct = sum(1 for s in senders if s[1] > ref - window_ms)
            if distinct < p["min_senders"]:
                continue
            _, total = w.count(buckets_by_rule, ref, None, 2)
            hits.append(
                rule.hit(
                    senders=distinct,
                    counterparty=tx.counterparty_id or "",
                    window=fmt_window(p["window_hours"]),
                    total=total,
                    amount=tx.amount,
                )
            )
        for table in (senders_by_rule, buckets_by_rule):
            for key in [k for k, v in table.items() if not v or k not in self._ids]:
                del table[key]
        return hits, state
