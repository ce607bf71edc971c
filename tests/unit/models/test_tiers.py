"""Risk tiers: threshold resolution, score to tier, rule escalation."""

from __future__ import annotations

import itertools
import math

import pytest

from models.tiers import (
    ALERTED_TIERS,
    TIERS,
    TierError,
    escalate,
    resolve_thresholds,
    tier_for_score,
)

ARTIFACT = {"HIGH": 0.9, "MEDIUM": 0.6, "LOW": 0.3}


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def test_no_overrides_keeps_artifact_thresholds() -> None:
    assert resolve_thresholds(ARTIFACT, {}) == ARTIFACT


def test_overrides_replace_only_their_tier() -> None:
    merged = resolve_thresholds(ARTIFACT, {"MEDIUM": 0.5})
    assert merged == {"HIGH": 0.9, "MEDIUM": 0.5, "LOW": 0.3}
    assert ARTIFACT["MEDIUM"] == 0.6  # inputs are not mutated


def test_all_overrides_and_types() -> None:
    merged = resolve_thresholds({"HIGH": 1, "MEDIUM": 0, "LOW": 0}, {"LOW": 0, "HIGH": 0.99})
    assert merged == {"HIGH": 0.99, "MEDIUM": 0.0, "LOW": 0.0}
    assert all(isinstance(v, float) for v in merged.values())


def test_artifact_extra_keys_are_ignored() -> None:
    merged = resolve_thresholds({**ARTIFACT, "MINIMAL": 0.0, "note": 7}, {})
    assert set(merged) == set(ALERTED_TIERS)


def test_equal_thresholds_are_allowed() -> None:
    merged = resolve_thresholds(ARTIFACT, {"HIGH": 0.6, "LOW": 0.6})
    assert merged == {"HIGH": 0.6, "MEDIUM": 0.6, "LOW": 0.6}


@pytest.mark.parametrize(
    "overrides",
    [
        {"HIGH": 0.5},  # HIGH below MEDIUM
        {"LOW": 0.7},  # LOW above MEDIUM
        {"MEDIUM": 0.95},  # MEDIUM above HIGH
        {"HIGH": 0.1, "MEDIUM": 0.2, "LOW": 0.3},  # reversed
    ],
)
def test_order_is_checked(overrides: dict[str, float]) -> None:
    with pytest.raises(TierError, match="HIGH >= MEDIUM >= LOW"):
        resolve_thresholds(ARTIFACT, overrides)


def test_order_is_checked_on_artifact_thresholds_too() -> None:
    with pytest.raises(TierError):
        resolve_thresholds({"HIGH": 0.2, "MEDIUM": 0.6, "LOW": 0.3}, {})


@pytest.mark.parametrize(
    ("overrides", "culprit"),
    [
        ({"HIGH": 1.5}, "HIGH"),
        ({"LOW": -0.1}, "LOW"),
        ({"HIGH": 2.0, "MEDIUM": 1.5, "LOW": 1.2}, "HIGH"),
    ],
)
def test_range_is_checked(overrides: dict[str, float], culprit: str) -> None:
    with pytest.raises(TierError, match=culprit):
        resolve_thresholds(ARTIFACT, overrides)


def test_nan_threshold_is_refused() -> None:
    with pytest.raises(TierError):
        resolve_thresholds(ARTIFACT, {"MEDIUM": float("nan")})


def test_tier_error_is_a_value_error() -> None:
    assert issubclass(TierError, ValueError)


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (1.0, "HIGH"),
        (0.95, "HIGH"),
        (0.9, "HIGH"),
        (below(0.9), "MEDIUM"),
        (0.75, "MEDIUM"),
        (0.6, "MEDIUM"),
        (below(0.6), "LOW"),
        (0.45, "LOW"),
        (0.3, "LOW"),
        (below(0.3), "MINIMAL"),
        (0.1, "MINIMAL"),
        (0.0, "MINIMAL"),
    ],
)
def test_tier_for_score_at_and_around_thresholds(score: float, tier: str) -> None:
    assert tier_for_score(score, ARTIFACT) == tier


def test_equal_thresholds_pick_the_highest_tier() -> None:
    thresholds = {"HIGH": 0.5, "MEDIUM": 0.5, "LOW": 0.2}
    assert tier_for_score(0.5, thresholds) == "HIGH"
    assert tier_for_score(below(0.5), thresholds) == "LOW"


def test_tier_is_monotonic_in_score() -> None:
    order = {t: r for r, t in enumerate(reversed(TIERS))}
    ranks = [order[tier_for_score(i / 1000, ARTIFACT)] for i in range(1001)]
    assert ranks == sorted(ranks)
    assert set(ranks) == {0, 1, 2, 3}


RANK = {"MINIMAL": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}


@pytest.mark.parametrize("tier", TIERS)
def test_escalate_without_rules_keeps_the_tier(tier: str) -> None:
    assert escalate(tier, ()) == tier


@pytest.mark.parametrize(
    ("tier", "rules"),
    [
        (tier, list(rules))
        for tier in TIERS
        for n in (1, 2)
        for rules in itertools.product(TIERS, repeat=n)
    ],
)
def test_escalate_takes_the_highest_and_never_lowers(tier: str, rules: list[str]) -> None:
    result = escalate(tier, rules)
    assert RANK[result] >= RANK[tier]
    assert RANK[result] == max(RANK[t] for t in [tier, *rules])


def test_escalate_examples() -> None:
    assert escalate("MINIMAL", ["LOW"]) == "LOW"
    assert escalate("LOW", ["HIGH", "MEDIUM"]) == "HIGH"
    assert escalate("HIGH", ["LOW", "MINIMAL"]) == "HIGH"
    assert escalate("MEDIUM", iter(["LOW"])) == "MEDIUM"
