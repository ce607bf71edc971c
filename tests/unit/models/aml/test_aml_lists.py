"""Allow / deny lists, suppressions with expiry, the final decision, and reload on change."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from models.aml import Lists, ListVerdict, RulebookError, decide
from models.aml.lists import IdList, load_id_list, load_suppressions
from models.aml.rulebook import RuleHit
from models.aml.runtime import AmlRuntime
from tests.unit.aml_support import DEFAULT_RULES, T0, tx

EXAMPLES = DEFAULT_RULES.parent / "examples"
HIT = RuleHit("round_amount", "LOW", "round amount 20,000 (a multiple of 1,000)")


def test_example_files_load() -> None:
    allow = load_id_list(EXAMPLES / "allowlist.toml")
    deny = load_id_list(EXAMPLES / "denylist.toml")
    sup = load_suppressions(EXAMPLES / "suppressions.toml")
    assert "m-00017" in allow.counterparties and "acc-sanctioned-1" in deny.accounts
    assert sup["acc-000042"].until_ms == 1_798_675_200_000  # 2026-12-31T00:00:00Z
    assert sup["acc-000042"].reason.startswith("year-end")


def test_deny_list_is_always_high_and_alerted() -> None:
    lists = Lists(deny=IdList(frozenset({"acc-bad"}), frozenset({"cp-bad"})))
    v = lists.verdict("acc-bad", "cp-bad", T0)
    assert [h.explanation for h in v.denied] == [
        "account acc-bad is on the deny list",
        "counterparty cp-bad is on the deny list",
    ]
    d = decide("MINIMAL", [HIT], v)
    assert d.tier == "HIGH" and d.alert
    assert [r["rule_id"] for r in d.rules] == ["deny_list", "deny_list", "round_amount"]
    assert lists.verdict("acc-ok", "cp-other", T0) == ListVerdict()


def test_allow_list_keeps_the_model_tier_without_rules_or_alerts() -> None:
    lists = Lists(allow=IdList(frozenset({"acc-payroll"}), frozenset({"m-trusted"})))
    for account, cp in (("acc-payroll", "x"), ("acc-other", "m-trusted")):
        d = decide("MEDIUM", [HIT], lists.verdict(account, cp, T0))
        assert (d.tier, d.rules, d.alert, d.permitted) == ("MEDIUM", [], False, False)
    # Deny wins over allow.
    both = Lists(allow=IdList(frozenset({"a"})), deny=IdList(frozenset({"a"})))
    assert decide("MINIMAL", [], both.verdict("a", None, T0)).alert


def test_suppression_silences_alerts_until_it_expires(tmp_path: Path) -> None:
    path = tmp_path / "sup.toml"
    path.write_text(
        '[[suppression]]\naccount = "acc-1"\nuntil = 2024-03-05T00:00:00Z\nreason = "bonus"\n'
        '[[suppression]]\naccount = "acc-2"\nuntil = 1709600000000\n'
    )
    lists = Lists(suppressions=load_suppressions(path))
    expiry = 1_709_596_800_000
    during = decide("LOW", [HIT], lists.verdict("acc-1", None, expiry - 1))
    assert during.tier == "LOW" and during.rules == [HIT.to_dict()] and not during.alert
    after = decide("LOW", [HIT], lists.verdict("acc-1", None, expiry))
    assert after.alert
    assert lists.verdict("acc-2", None, expiry).suppressed_until_ms == 1_709_600_000_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('accounts = "acc-1"', "accounts: must be a list of strings"),
        ('accounts = ["acc-1", 3]', r"accounts\[1\]: must be a non-empty string, got 3"),
        ('people = ["x"]', "unknown key 'people'"),
    ],
)
def test_id_list_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "deny.toml"
    path.write_text(text)
    with pytest.raises(RulebookError, match=message):
        load_id_list(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[suppression]]\nuntil = 2026-01-01T00:00:00Z", "suppression #1: account: required"),
        (
            '[[suppression]]\naccount = "a"\nuntil = 2026-01-01T00:00:00',
            "suppression #1 \\(account 'a'\\): until: required, a date-time with a time zone",
        ),
        ('[[suppression]]\naccount = "a"\nuntil = 1\nwho = 2', "unknown key 'who'"),
    ],
)
def test_suppression_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sup.toml"
    path.write_text(text)
    with pytest.raises(RulebookError, match=message):
        load_suppressions(path)


def _touch(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def test_runtime_reloads_changed_files_and_keeps_the_last_good_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(DEFAULT_RULES.read_text())
    deny = tmp_path / "deny.toml"
    deny.write_text("accounts = []\n")
    runtime = AmlRuntime(rules, None, deny, None)
    first = runtime.snapshot
    assert runtime.poll() is False and runtime.snapshot is first

    _touch(deny, 'accounts = ["acc-7"]\n', 1)
    assert runtime.poll() is True
    assert runtime.snapshot.lists.deny.accounts == {"acc-7"}
    assert runtime.snapshot.engine is first.engine  # rules untouched

    # A broken rules file keeps the previous rules and logs the problem with the rule named.
    text = DEFAULT_RULES.read_text().replace("min_count = 3", "min_count = 0", 1)
    _touch(rules, text, 2)
    with caplog.at_level(logging.ERROR, logger="models.aml.runtime"):
        assert runtime.poll() is False
    assert "rule 'structuring_24h' (#1): params.min_count: must be >= 1" in caplog.text
    assert runtime.snapshot.engine is first.engine
    assert runtime.poll() is False  # the same broken version is not re-read

    # Fixed: a rule switched off, swapped in whole.
    text = DEFAULT_RULES.read_text().replace(
        'id = "round_amount"', 'id = "round_amount"\nenabled = false', 1
    )
    _touch(rules, text, 3)
    assert runtime.poll() is True
    rule_ids = [r.id for r in runtime.snapshot.engine.rulebook.rules]
    assert "round_amount" not in rule_ids and "structuring_24h" in rule_ids
    assert runtime.snapshot.lists.deny.accounts == {"acc-7"}
    hits, _ = runtime.snapshot.engine.evaluate([], tx("a", T0, 20_000, type="TRANSFER"), [0.0] * 27)
    assert hits == []


def test_runtime_refuses_a_broken_file_at_start(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[[rule]]\nid = 'x'\n")
    with pytest.raises(RulebookError, match=r"rule 'x' \(#1\): kind"):
        AmlRuntime(rules)
