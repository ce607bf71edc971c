"""Population stability index, the score window and the artifact's reference histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring.drift import (
    PSI_EPSILON,
    Reference,
    ScoreWindow,
    histogram,
    psi,
    reference_from_artifact,
    window_psi,
)

EDGES = [i / 20 for i in range(21)]


def test_psi_is_zero_for_the_same_shares_whatever_the_totals() -> None:
    assert psi([10, 20, 70], [1, 2, 7]) == pytest.approx(0.0)


def test_psi_matches_the_textbook_formula() -> None:
    expected = [50, 30, 20]
    actual = [20, 30, 50]
    by_hand = sum(
        (a / 100 - e / 100) * math.log((a / 100) / (e / 100))
        for e, a in zip(expected, actual, strict=True)
    )
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi(expected, actual) == pytest.approx(psi(actual, expected))  # symmetric
    assert psi(expected, actual) > 0.25  # a shift this size is "significant"


def test_psi_of_an_empty_bin_is_large_but_finite() -> None:
    value = psi([50, 50, 0], [40, 40, 20])
    assert math.isfinite(value)
    assert value == pytest.approx(
        (0.4 - 0.5) * math.log(0.4 / 0.5) * 2 + (0.2 - PSI_EPSILON) * math.log(0.2 / PSI_EPSILON)
    )


@pytest.mark.parametrize(
    ("expected", "actual"),
    [([1, 2], [1, 2, 3]), ([], []), ([0, 0], [1, 1]), ([1, 1], [0, 0])],
)
def test_psi_refuses_histograms_it_cannot_compare(expected: list[int], actual: list[int]) -> None:
    with pytest.raises(ValueError):
        psi(expected, actual)


def test_reference_from_artifact_reads_the_training_histogram() -> None:
    ref = reference_from_artifact({"edges": EDGES, "counts": [5.0] * 20})
    assert ref == Reference(tuple(EDGES), tuple([5.0] * 20))


@pytest.mark.parametrize(
    "distribution",
    [
        {},
        {"edges": [0.0, 1.0], "counts": []},
        {"edges": [0.0, 0.5, 1.0], "counts": [0, 0]},
        {"edges": [0.0, 0.5, 0.5], "counts": [1, 1]},
        {"edges": [0.0, 0.5, 1.0], "counts": [1, -1]},
        {"edges": [0.0], "counts": [1]},
    ],
)
def test_reference_from_artifact_rejects_unusable_histograms(
    distribution: dict[str, list[float]],
) -> None:
    assert reference_from_artifact(distribution) is None


def test_histogram_puts_scores_in_bins_and_clips_outliers() -> None:
    counts = histogram(np.array([0.0, 0.01, 0.5, 0.999, 1.0, 1.5, -0.2]), EDGES)
    assert sum(counts) == 7
    assert counts[0] == 3  # 0.0, 0.01 and the clipped -0.2
    assert counts[10] == 1
    assert counts[-1] == 3  # 0.999, 1.0 and the clipped 1.5


def test_window_keeps_only_the_last_scores() -> None:
    window = ScoreWindow(5)
    assert len(window) == 0
    window.add(np.array([0.1, 0.2]))
    assert sorted(window.values()) == [0.1, 0.2]
    window.add(np.array([0.3, 0.4, 0.5, 0.6]))  # wraps around
    assert len(window) == 5
    assert sorted(window.values()) == [0.2, 0.3, 0.4, 0.5, 0.6]
    window.add(np.arange(10) / 10)  # bigger than the window: its tail only
    assert sorted(window.values()) == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    window.add([])
    assert len(window) == 5


def test_window_rejects_a_zero_size() -> None:
    with pytest.raises(ValueError):
        ScoreWindow(0)


def test_window_psi_is_small_for_the_reference_distribution_and_large_after_a_shift() -> None:
    rng = np.random.default_rng(3)
    reference_scores = rng.beta(1, 20, 20_000)  # mostly low scores, like real traffic
    counts, _ = np.histogram(reference_scores, bins=20, range=(0.0, 1.0))
    ref = reference_from_artifact({"edges": EDGES, "counts": counts.tolist()})
    assert ref is not None
    window = ScoreWindow(5000)
    assert window_psi(window, ref) is None
    window.add(rng.beta(1, 20, 5000))
    same = window_psi(window, ref)
    assert same is not None and same < 0.02
    window.add(rng.beta(2, 5, 5000))  # the score distribution moved up
    shifted = window_psi(window, ref)
    assert shifted is not None and shifted > 0.25
