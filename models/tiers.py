"""Risk tiers: from a calibrated score and rule hits to HIGH / MEDIUM / LOW / MINIMAL.

The one place that names the tiers, orders them and sets the precision each alerted tier
aims at: settings, training, rules, lists, reports, metrics and the web feed read them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

TIERS: tuple[str, ...] = ("HIGH", "MEDIUM", "LOW", "MINIMAL")
ALERTED_TIERS: tuple[str, ...] = ("HIGH", "MEDIUM", "LOW")
#: Precision each alerted tier aims at when training chooses its threshold (the defaults of
#: the ``train`` command, of the backtest's retraining and of ``train_model``).
DEFAULT_PRECISION_TARGETS: Mapping[str, float] = {"HIGH": 0.90, "MEDIUM": 0.60, "LOW": 0.25}
_RANK = {tier: rank for rank, tier in enumerate(reversed(TIERS))}  # MINIMAL=0 .. HIGH=3


class TierError(ValueError):
    """Thresholds that cannot define tiers."""


def resolve_thresholds(
    artifact_thresholds: Mapping[str, float], overrides: Mapping[str, float]
) -> dict[str, float]:
    """Merge the artifact's thresholds with settings overrides and check their order."""
    merged = {tier: float(artifact_thresholds[tier]) for tier in ALERTED_TIERS}
    merged.update({tier: float(v) for tier, v in overrides.items()})
    if not merged["HIGH"] >= merged["MEDIUM"] >= merged["LOW"]:
        raise TierError(f"tier thresholds must satisfy HIGH >= MEDIUM >= LOW, got {merged}")
    for tier, value in merged.items():
        if not 0.0 <= value <= 1.0:
            raise TierError(f"threshold of {tier} is {value}, outside 0..1")
    return merged


def tier_for_score(score: float, thresholds: Mapping[str, float]) -> str:
    """Return the highest tier whose threshold the score reaches."""
    if score >= thresholds["HIGH"]:
        return "HIGH"
    if score >= thresholds["MEDIUM"]:
        return "MEDIUM"
    if score >= thresholds["LOW"]:
        return "LOW"
    return "MINIMAL"


def escalate(tier: str, rule_tiers: Iterable[str]) -> str:
    """Raise ``tier`` to the highest tier a rule asks for; never lower it."""
    best = tier
    for candidate in rule_tiers:
        if _RANK[candidate] > _RANK[best]:
            best = candidate
    return best
