"""The fan-in decision (models.aml.fanin): what is counted and how a hit raises a decision."""

from __future__ import annotations

from typing import Any

import pytest

from models.aml import FanInEngine
from models.aml.fanin import count_fanin, escalate_fanin, final_decision
from models.aml.lists import Decision, ListVerdict, decide
from models.aml.rulebook import RuleHit
from models.redelivery import InputPosition
from tests.unit.aml_support import T0, only
from tests.unit.aml_support import tx as aml_tx

LOW = RuleHit("low_rule", "LOW", "low")
FAN = RuleHit("fan_in_mule", "HIGH", "fan-in")
DENY = RuleHit("deny_list", "HIGH", "denied")


def test_allow_listed_or_missing_counterparties_are_not_counted() -> None:
    fanin = FanInEngine(only("fan_in_mule"))
    tx = aml_tx("s1", T0, 500, counterparty_id="mule", type="TRANSFER")
    assert count_fanin(fanin, frozenset({"mule"}), [], tx) is None
    assert count_fanin(fanin, frozenset(), [], aml_tx("s1", T0, 500, type="TRANSFER")) is None
    counted = count_fanin(fanin, frozenset(), [], tx)
    assert counted is not None and counted[1]  # a state holding the sender


def test_five_senders_hit_and_a_redelivery_is_not_counted_twice() -> None:
    fanin = FanInEngine(only("fan_in_mule"))
    state: list[Any] = []
    hits: list[RuleHit] = []
    for i in range(4):
        tx = aml_tx(f"s{i}", T0 + i, 500, counterparty_id="mule", type="TRANSFER")
        result = count_fanin(fanin, frozenset(), state, tx, InputPosition("fwd", i))
        assert result is not None
        hits, state = result
        again = count_fanin(fanin, frozenset(), state, tx, InputPosition("fwd", i))
        assert again is not None and again[0] == []  # the same sender, once
    assert hits == []
    fifth = aml_tx("s9", T0 + 9, 500, counterparty_id="mule", type="TRANSFER")
    result = count_fanin(fanin, frozenset(), state, fifth, InputPosition("fwd", 9))
    assert result is not None and [h.rule_id for h in result[0]] == ["fan_in_mule"]


def test_a_fan_in_hit_raises_a_permitted_decision_only() -> None:
    base = Decision("LOW", [LOW.to_dict()], True, True)
    assert escalate_fanin(base, []) is None
    assert escalate_fanin(Decision("LOW", [], False, False), [FAN]) is None
    raised = escalate_fanin(base, [FAN])
    assert raised == Decision("HIGH", [LOW.to_dict(), FAN.to_dict()], True, True)


@pytest.mark.parametrize(
    "verdict",
    [
        ListVerdict(),
        ListVerdict(denied=(DENY,)),
        ListVerdict(allowed=True),
    ],
)
@pytest.mark.parametrize("model_tier", ["MINIMAL", "LOW", "HIGH"])
def test_the_two_stages_decide_as_one_decision_of_all_hits(
    verdict: ListVerdict, model_tier: str
) -> None:
    """What the two agents reach is what one decision over every hit would be."""
    got = final_decision(model_tier, [LOW], [FAN], verdict)
    assert got == decide(model_tier, [LOW, FAN], verdict)


def test_a_suppressed_account_gets_no_alert_from_either_stage() -> None:
    verdict = ListVerdict(suppressed_until_ms=T0)
    assert not final_decision("LOW", [LOW], [FAN], verdict).alert
    assert not decide("LOW", [LOW, FAN], verdict).alert
