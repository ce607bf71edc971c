"""Simulator typologies: valid, labelled, deterministic, caught by the default rules, and off
by default so the existing fraud streams are unchanged."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from models.simulator import AML_PATTERNS, PATTERNS, Simulator, simulate_history
from models.transaction import transaction_from_dict
from tests.unit.aml_support import TYPOLOGY_RULES as EXPECTED
from tests.unit.aml_support import Replayer, default_rulebook, ids

START_MS = 1_704_067_200_000
DAY = 86_400_000


@pytest.mark.parametrize("name", AML_PATTERNS)
def test_each_typology_is_valid_labelled_and_caught_by_its_rule(name: str) -> None:
    sim = Simulator(seed=9, n_accounts=2000)
    caught = 0
    for k in range(6):
        recs = sim.typology(name, START_MS + k * 10 * DAY)
        assert recs and all(r.pattern == name and r.label == 1 for r in recs)
        assert "pattern" not in recs[0].tx and "label" not in recs[0].tx
        r = Replayer(default_rulebook())
        fired: set[str] = set()
        for rec in recs:
            fired |= ids(r.feed(transaction_from_dict(rec.tx)))
        caught += bool(fired & EXPECTED[name])
    assert caught == 6, f"{name}: caught {caught}/6"


def test_typologies_are_deterministic_and_unknown_names_refused() -> None:
    first = [r.tx for r in Simulator(seed=4).typology("structuring", START_MS)]
    again = [r.tx for r in Simulator(seed=4).typology("structuring", START_MS)]
    assert first == again
    with pytest.raises(ValueError, match="unknown typology 'smurf'"):
        Simulator().typology("smurf", START_MS)


def test_shapes_of_the_typologies() -> None:
    sim = Simulator(seed=5, n_accounts=2000)
    ring = sim.typology("structuring", START_MS)
    assert len({r.tx["account_id"] for r in ring}) >= 3  # a ring, not one account
    assert all(r.tx["type"] == "CASH_IN" and 8_000 <= r.tx["amount"] < 10_000 for r in ring)
    mule = sim.typology("mule_fan_in", START_MS)
    assert len({r.tx["counterparty_id"] for r in mule}) == 1
    assert len({r.tx["account_id"] for r in mule}) >= 5
    dormant = sim.typology("dormant_reactivation", START_MS)
    assert dormant[-1].tx["ts"] - dormant[-2].tx["ts"] > 90 * DAY  # back-dated old activity
    passing = sim.typology("pass_through", START_MS)
    cash_in = sum(r.tx["amount"] for r in passing if r.tx["type"] == "CASH_IN")
    out = sum(r.tx["amount"] for r in passing if r.tx["type"] == "TRANSFER")
    assert 0.85 * cash_in - 0.02 <= out <= 0.98 * cash_in + 0.02
    for r in passing:  # balances move the right way for money in
        sign = 1 if r.tx["type"] == "CASH_IN" else -1
        assert r.tx["balance_after"] == pytest.approx(
            r.tx["balance_before"] + sign * r.tx["amount"]
        )


def test_stream_mixes_typologies_in_only_when_asked() -> None:
    plain = simulate_history(seed=3, n_accounts=500, days=2, start_ms=START_MS)
    assert {r.pattern for r in plain} <= set(PATTERNS)
    mixed = simulate_history(seed=3, n_accounts=500, days=4, start_ms=START_MS, aml_rate=0.02)
    counts = Counter(r.pattern for r in mixed)
    assert set(AML_PATTERNS) <= set(counts), counts
    share = sum(counts[p] for p in AML_PATTERNS) / len(mixed)
    assert 0.005 < share < 0.06
    # The AML draws have their own generator: the fraud patterns keep their share.
    frauds = sum(counts[p] for p in PATTERNS[1:]) / len(mixed)
    assert 0.005 < frauds < 0.02
    live = Simulator(seed=2, aml_rate=0.05).events(START_MS, 500.0)
    assert any(r.pattern in AML_PATTERNS for r in itertools.islice(live, 20_000))
