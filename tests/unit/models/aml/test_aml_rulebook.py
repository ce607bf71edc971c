"""The rules file: the default loads, and every mistake names the rule and the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from models.aml import RulebookError, load_rulebook
from models.aml.rulebook import KINDS, fmt_number, fmt_window, parse_rulebook
from models.simulator import HIGH_RISK_COUNTRIES
from tests.unit.aml_support import DEFAULT_RULES

GOOD: dict[str, Any] = {
    "format": 1,
    "rule": [
        {
            "id": "s24",
            "kind": "structuring",
            "description": "d",
            "tier": "medium",
            "reason": "{count} deposits, total {total}",
            "params": {"lower": 9000, "threshold": 10000},
        }
    ],
}


def broken(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    rule = doc["rule"][0]
    for key, value in changes.items():
        if key.startswith("params_"):
            rule["params"][key.removeprefix("params_")] = value
        elif value is None:
            del rule[key]
        else:
            rule[key] = value
    return doc


def test_default_rules_cover_every_kind_and_typology() -> None:
    book = load_rulebook(DEFAULT_RULES)
    assert {r.kind for r in book.rules} == set(KINDS)
    assert len({r.id for r in book.rules}) == len(book.rules)
    assert all(r.tier in ("HIGH", "MEDIUM", "LOW") for r in book.rules)
    jurisdiction = next(r for r in book.rules if r.kind == "high_risk_jurisdiction")
    assert set(HIGH_RISK_COUNTRIES) <= jurisdiction.params["countries"]
    assert [r.id for r in book.counterparty_rules] == ["fan_in_mule"]


def test_defaults_fill_parameters_and_tier_is_normalised() -> None:
    book = parse_rulebook(GOOD)
    rule = book.rules[0]
    assert rule.tier == "MEDIUM"
    assert rule.params["window_hours"] == 24 and rule.params["min_count"] == 3
    assert rule.params["types"] == frozenset({"CASH_IN"})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (broken(id=None), "rule #1: id: required"),
        (broken(kind="smurfing"), "rule 's24' (#1): kind: 'smurfing' is not one of"),
        (broken(tier="CRITICAL"), "rule 's24' (#1): tier: must be one of HIGH, MEDIUM, LOW"),
        (broken(description=""), "rule 's24' (#1): description: required"),
        (broken(colour="red"), "rule 's24' (#1): unknown key 'colour'"),
        (broken(params_min_count=0), "rule 's24' (#1): params.min_count: must be >= 1, got 0"),
        (broken(params_min_count=2.5), "params.min_count: must be an integer, got 2.5"),
        (broken(params_lower="9000"), "params.lower: must be a finite number, got '9000'"),
        (broken(params_lower=12000), "params.lower must be below params.threshold"),
        (broken(params_typo=1), "params.typo: unknown parameter for kind structuring"),
        (broken(params_types=["CASH"]), "params.types: unknown transaction type 'CASH'"),
        (broken(params_window_hours=9999), "params.window_hours: must be <= 744"),
        (broken(params={"lower": 1}), "params.threshold: required for kind structuring"),
        (broken(reason="{count} in {hours}"), "reason: unknown placeholder {hours}"),
        (broken(reason="{total:.2f}"), "format specs are not allowed"),
        (broken(reason="{count"), "reason: "),
        (broken(enabled="yes"), "enabled: must be true or false"),
        ({"rule": [GOOD["rule"][0], GOOD["rule"][0]]}, "rule 's24' (#2): id: 's24' is used twice"),
        ({"format": 2}, "format: 2 is not 1"),
        ({"rules": []}, "unknown top-level key 'rules'"),
    ],
)
def test_errors_name_the_rule_and_the_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(RulebookError) as err:
        parse_rulebook(doc, "rules.toml")
    assert str(err.value).startswith("rules.toml: ")
    assert message in str(err.value)


def test_jurisdiction_countries_are_checked() -> None:
    doc = {
        "rule": [
            {
                "id": "hr",
                "kind": "high_risk_jurisdiction",
                "description": "d",
                "tier": "HIGH",
                "reason": "{country}",
                "params": {"countries": ["IR", "Iran"]},
            }
        ]
    }
    with pytest.raises(RulebookError, match=r"rule 'hr' \(#1\): params.countries: 'Iran' is not"):
        parse_rulebook(doc)


def test_toml_syntax_errors_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rule]]\nid = "x"\nkind = \n')
    with pytest.raises(RulebookError, match=r"rules.toml: not valid TOML \(.*line 3"):
        load_rulebook(bad)
    with pytest.raises(RulebookError, match=r"missing\.toml: cannot read"):
        load_rulebook(tmp_path / "missing.toml")


def test_disabled_rules_are_checked_but_not_run() -> None:
    doc = broken(enabled=False)
    book = parse_rulebook(doc)
    assert book.rules == () and book.all_ids == ("s24",)
    with pytest.raises(RulebookError):
        parse_rulebook(broken(enabled=False, params_min_count=0))


def test_number_and_window_formats() -> None:
    assert fmt_number(38400.0) == "38,400"
    assert fmt_number(9512.5) == "9,512.50"
    assert fmt_number(3) == "3"
    assert fmt_window(24) == "24 h" and fmt_window(168) == "7 d" and fmt_window(6) == "6 h"
