"""The rules file: TOML in, checked :class:`Rulebook` out, errors that name the rule and field.

A compliance analyst edits this file, so every mistake is reported as
``<file>: rule 'structuring_24h' (#1): params.min_count: must be an integer >= 1, got 0``
rather than as a traceback. Each rule has an ``id``, a ``kind`` (the typology, which fixes
its parameters and the placeholders of its reason), a ``description``, a ``tier`` it
escalates to, a ``reason`` template and ``params``.
"""

from __future__ import annotations

import math
import reprlib
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.tiers import ALERTED_TIERS
from models.transaction import TX_TYPES

RULES_FORMAT = 1
#: Longest window a rule may keep state for (daily buckets beyond three days).
MAX_WINDOW_HOURS = 31 * 24


#: Largest magnitude of a numeric rule parameter (amounts, counts, ratios).
MAX_PARAM = 1e15


def short_repr(value: object) -> str:
    """Return ``repr(value)`` cut short: a file's value can be huge, a message must not be."""
    if isinstance(value, int) and value.bit_length() > 64:
        try:
            return f"an integer of {len(str(abs(value)))} digits"
        except ValueError:  # beyond Python's int-to-str limit (a TOML hex literal)
            return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return reprlib.repr(value)


class RulebookError(ValueError):
    """A rules or list file that cannot be used; the message names the place and field."""


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule firing on one transaction, with its explanation filled in."""

    rule_id: str
    tier: str
    explanation: str

    def to_dict(self) -> dict[str, str]:
        """Return the JSON form used in the ``rules`` list of records."""
        return {"rule_id": self.rule_id, "tier": self.tier, "explanation": self.explanation}


@dataclass(frozen=True, slots=True)
class _Param:
    kind: str  # "int", "number", "types", "strings", "countries"
    default: Any = None  # None: required
    minimum: float | None = None
    maximum: float | None = None


_TYPES_ANY: list[str] = []

#: Parameters of each kind, with defaults (``None`` = required).
KINDS: dict[str, dict[str, _Param]] = {
    "structuring": {
        "types": _Param("types", ["CASH_IN"]),
        "channels": _Param("strings", []),
        "lower": _Param("number", None, 0.0),
        "threshold": _Param("number", None, 0.0),
        "window_hours": _Param("int", 24, 1, MAX_WINDOW_HOURS),
        "min_count": _Param("int", 3, 1),
    },
    "structuring_total": {
        "types": _Param("types", ["CASH_IN"]),
        "channels": _Param("strings", []),
        "threshold": _Param("number", None, 0.0),
        "window_hours": _Param("int", 24, 1, MAX_WINDOW_HOURS),
        "min_count": _Param("int", 2, 2),
    },
    "pass_through": {
        "in_types": _Param("types", ["CASH_IN"]),
        "out_types": _Param("types", ["TRANSFER", "CASH_OUT"]),
        "window_hours": _Param("int", 6, 1, MAX_WINDOW_HOURS),
        "min_in": _Param("number", 5000.0, 0.0),
        "min_ratio": _Param("number", 0.8, 0.0, 10.0),
        "max_ratio": _Param("number", 1.25, 0.0, 100.0),
    },
    "fan_out": {
        "types": _Param("types", ["TRANSFER"]),
        "window_hours": _Param("int", 24, 1, MAX_WINDOW_HOURS),
        "min_new": _Param("int", 5, 1),
        "min_amount": _Param("number", 0.0, 0.0),
    },
    "dormant": {
        "types": _Param("types", _TYPES_ANY),
        "min_days": _Param("number", 90.0, 0.0),
        "min_amount": _Param("number", 5000.0, 0.0),
    },
    "round_amount": {
        "types": _Param("types", _TYPES_ANY),
        "min_amount": _Param("number", 10000.0, 0.0),
        "multiple_of": _Param("number", 1000.0, 0.01),
    },
    "high_risk_jurisdiction": {
        "types": _Param("types", _TYPES_ANY),
        "countries": _Param("countries"),
        "fields": _Param("strings", ["country", "counterparty_country"]),
        "min_amount": _Param("number", 0.0, 0.0),
    },
    "fan_in": {
        "types": _Param("types", ["TRANSFER"]),
        "window_hours": _Param("int", 24, 1, MAX_WINDOW_HOURS),
        "min_senders": _Param("int", 5, 2),
        "min_amount": _Param("number", 0.0, 0.0),
    },
}

#: Values each kind can put into its reason template.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "structuring": ("count", "lower", "upper", "threshold", "window", "total", "amount"),
    "structuring_total": ("count", "threshold", "window", "total", "amount"),
    "pass_through": ("in_total", "out_total", "ratio", "window", "amount"),
    "fan_out": ("count", "window", "total", "amount"),
    "dormant": ("days", "amount"),
    "round_amount": ("amount", "multiple"),
    "high_risk_jurisdiction": ("country", "field", "amount"),
    "fan_in": ("senders", "counterparty", "window", "total", "amount"),
}

#: Kinds evaluated on counterparty-keyed state (the fan-in agent); the rest are per account.
COUNTERPARTY_KINDS = frozenset({"fan_in"})

_RULE_KEYS = {"id", "kind", "description", "tier", "reason", "params", "enabled"}


def fmt_number(value: float) -> str:
    """Format an amount or count for a reason: ``38,400`` or ``9,512.50``."""
    if abs(value - round(value)) < 0.005:
        return f"{round(value):,}"
    return f"{value:,.2f}"


def fmt_window(hours: int) -> str:
    """Format a window length: ``6 h``, ``24 h``, ``7 d``."""
    if hours >= 48 and hours % 24 == 0:
        return f"{hours // 24} d"
    return f"{hours} h"


@dataclass(frozen=True, slots=True)
class Rule:
    """One configured rule (immutable; a reload builds new ones)."""

    id: str
    kind: str
    description: str
    tier: str
    reason: str
    params: Mapping[str, Any]
    enabled: bool = True

    def hit(self, **values: Any) -> RuleHit:
        """Return this rule's hit, its reason filled with ``values`` (numbers formatted)."""
        shown = {
            k: fmt_number(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
            for k, v in values.items()
        }
        return RuleHit(self.id, self.tier, self.reason.format_map(shown))


@dataclass(frozen=True, slots=True)
class Rulebook:
    """The enabled rules of one rules file."""

    rules: tuple[Rule, ...] = ()
    source: str = "<empty>"
    all_ids: tuple[str, ...] = field(default=())

    @property
    def account_rules(self) -> tuple[Rule, ...]:
        """Return the enabled rules evaluated per account."""
        return tuple(r for r in self.rules if r.enabled and r.kind not in COUNTERPARTY_KINDS)

    @property
    def counterparty_rules(self) -> tuple[Rule, ...]:
        """Return the enabled rules evaluated per counterparty (fan-in)."""
        return tuple(r for r in self.rules if r.enabled and r.kind in COUNTERPARTY_KINDS)


def _check_param(where: str, name: str, spec: _Param, value: Any) -> Any:
    at = f"{where}: params.{name}"
    if spec.kind in ("int", "number"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if spec.kind == "number":
            ok = ok or (isinstance(value, float) and math.isfinite(value))
        if not ok:
            expected = "an integer" if spec.kind == "int" else "a finite number"
            raise RulebookError(f"{at}: must be {expected}, got {short_repr(value)}")
        if abs(value) > MAX_PARAM:
            # TOML integers are unbounded: a 400-digit one overflows float() below.
            raise RulebookError(f"{at}: must be within +-{MAX_PARAM:.0e}, got {short_repr(value)}")
        if spec.minimum is not None and value < spec.minimum:
            raise RulebookError(f"{at}: must be >= {spec.minimum:g}, got {short_repr(value)}")
        if spec.maximum is not None and value > spec.maximum:
            raise RulebookError(f"{at}: must be <= {spec.maximum:g}, got {short_repr(value)}")
        return float(value) if spec.kind == "number" else int(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RulebookError(f"{at}: must be a list of strings, got {short_repr(value)}")
    if spec.kind == "types":
        upper = [v.upper() for v in value]
        bad = [v for v in upper if v not in TX_TYPES]
        if bad:
            raise RulebookError(
                f"{at}: unknown transaction type {short_repr(bad[0])}; "
                f"known: {', '.join(sorted(TX_TYPES))}"
            )
        return frozenset(upper)
    if spec.kind == "countries":
        if not value:
            raise RulebookError(f"{at}: must list at least one country")
        bad = [v for v in value if not (len(v) == 2 and v.isascii() and v.isalpha())]
        if bad:
            raise RulebookError(
                f"{at}: {short_repr(bad[0])} is not a 2-letter ISO 3166 country code"
            )
        return frozenset(v.upper() for v in value)
    return tuple(value)


def _check_cross(where: str, kind: str, p: dict[str, Any]) -> None:
    if kind == "structuring" and not p["lower"] < p["threshold"]:
        raise RulebookError(f"{where}: params.lower must be below params.threshold")
    if kind == "pass_through":
        if not p["min_ratio"] <= p["max_ratio"]:
            raise RulebookError(f"{where}: params.min_ratio must be <= params.max_ratio")
        if not p["in_types"] or not p["out_types"]:
            raise RulebookError(f"{where}: params.in_types and params.out_types must not be empty")


def _check_reason(where: str, kind: str, reason: str) -> None:
    allowed = PLACEHOLDERS[kind]
    try:
        parsed = list(string.Formatter().parse(reason))
    except ValueError as exc:
        raise RulebookError(f"{where}: reason: {exc}") from None
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if name not in allowed:
            raise RulebookError(
                f"{where}: reason: unknown placeholder {{{name}}}; "
                f"{kind} rules can use {', '.join('{' + a + '}' for a in allowed)}"
            )
        if spec:
            raise RulebookError(f"{where}: reason: {{{name}:{spec}}}: format specs are not allowed")


def _rule(index: int, doc: Any, seen: set[str]) -> Rule:
    where = f"rule #{index}"
    if not isinstance(doc, dict):
        raise RulebookError(f"{where}: must be a table ([[rule]])")
    rid = doc.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise RulebookError(f"{where}: id: required, a non-empty string")
    where = f"rule {short_repr(rid)} (#{index})"
    if rid in seen or rid == "deny_list":
        raise RulebookError(f"{where}: id: {short_repr(rid)} is used twice or reserved")
    unknown = sorted(set(doc) - _RULE_KEYS)
    if unknown:
        raise RulebookError(
            f"{where}: unknown key {short_repr(unknown[0])}; known: {', '.join(sorted(_RULE_KEYS))}"
        )
    kind = doc.get("kind")
    if kind not in KINDS:
        raise RulebookError(f"{where}: kind: {short_repr(kind)} is not one of {', '.join(KINDS)}")
    for key in ("description", "reason"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise RulebookError(f"{where}: {key}: required, a non-empty string")
    tier = doc.get("tier")
    if not isinstance(tier, str) or tier.upper() not in ALERTED_TIERS:
        raise RulebookError(
            f"{where}: tier: must be one of {', '.join(ALERTED_TIERS)}, got {short_repr(tier)}"
        )
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RulebookError(f"{where}: enabled: must be true or false")
    raw_params = doc.get("params", {})
    if not isinstance(raw_params, dict):
        raise RulebookError(f"{where}: params: must be a table")
    specs = KINDS[kind]
    unknown = sorted(set(raw_params) - set(specs))
    if unknown:
        raise RulebookError(
            f"{where}: params.{unknown[0]}: unknown parameter for kind {kind}; "
            f"known: {', '.join(specs)}"
        )
    params: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in raw_params:
            params[name] = _check_param(where, name, spec, raw_params[name])
        elif spec.default is None:
            raise RulebookError(f"{where}: params.{name}: required for kind {kind}")
        else:
            params[name] = _check_param(where, name, spec, spec.default)
    _check_cross(where, kind, params)
    _check_reason(where, kind, doc["reason"])
    return Rule(rid, kind, doc["description"].strip(), tier.upper(), doc["reason"], params, enabled)


def parse_rulebook(doc: Mapping[str, Any], source: str = "<rules>") -> Rulebook:
    """Check a decoded rules document; raise :class:`RulebookError` naming what is wrong."""
    try:
        fmt = doc.get("format", RULES_FORMAT)
        if fmt != RULES_FORMAT:
            raise RulebookError(f"format: {short_repr(fmt)} is not {RULES_FORMAT}")
        unknown = sorted(set(doc) - {"format", "rule"})
        if unknown:
            raise RulebookError(
                f"unknown top-level key {short_repr(unknown[0])} (rules go in [[rule]])"
            )
        items = doc.get("rule", [])
        if not isinstance(items, list):
            raise RulebookError("rule: must be an array of tables ([[rule]])")
        seen: set[str] = set()
        rules = []
        for i, item in enumerate(items, start=1):
            rule = _rule(i, item, seen)
            seen.add(rule.id)
            rules.append(rule)
    except RulebookError as exc:
        raise RulebookError(f"{source}: {exc}") from None
    return Rulebook(tuple(r for r in rules if r.enabled), source, tuple(r.id for r in rules))


#: Largest rules or list file read (an analyst's file is kilobytes; a runaway one is refused).
MAX_FILE_BYTES = 16 * 1024 * 1024


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; raise :class:`RulebookError` with the file name and the problem.

    Every way a file can be unusable (unreadable, not UTF-8, not TOML, nested too deep for
    the parser, empty) is this one error, so a reload can keep the running version.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RulebookError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise RulebookError(f"{path}: larger than {MAX_FILE_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bom = " (a UTF-16 byte-order mark: save it as UTF-8)" if data[:2] in _UTF16_BOMS else ""
        raise RulebookError(
            f"{path}: not UTF-8: byte 0x{data[exc.start]:02X} at offset {exc.start}{bom}"
        ) from None
    try:
        doc = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer of over 4,300 digits
        raise RulebookError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise RulebookError(f"{path}: not valid TOML (arrays or tables nested too deep)") from None
    if not doc:
        raise RulebookError(f"{path}: empty file (no keys or tables)")
    return doc


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def load_rulebook(path: Path) -> Rulebook:
    """Read and check a rules file; a file without any ``[[rule]]`` is refused.

    An empty or truncated rules file must not turn every rule off: to disable rules, keep
    them in the file with ``enabled = false``.
    """
    doc = load_toml(path)
    if not doc.get("rule"):
        raise RulebookError(
            f"{path}: no [[rule]] tables; a rules file without rules would turn every rule "
            "off (keep a rule with enabled = false to disable it)"
        )
    return parse_rulebook(doc, str(path))
