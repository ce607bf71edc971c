"""Score drift: population stability index of recent scores against the validation scores.

The model artifact stores a histogram of its validation scores (``score_distribution``:
``edges`` and ``counts``). A worker keeps its last ``VIGIL_DRIFT_WINDOW`` scores in a ring
buffer and compares their histogram over the same edges with it. Pure code: no Faust, no
Prometheus, so it is unit-tested on plain arrays.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Share given to an empty bin, so an empty bin costs a large but finite amount.
PSI_EPSILON = 1e-4
#: Rule of thumb for PSI: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
PSI_SIGNIFICANT = 0.25


@dataclass(frozen=True, slots=True)
class Reference:
    """The validation score histogram of one model artifact."""

    edges: tuple[float, ...]
    counts: tuple[float, ...]


def reference_from_artifact(distribution: Mapping[str, Sequence[float]]) -> Reference | None:
    """Return the reference histogram stored in an artifact, or None if it has none usable."""
    edges = [float(e) for e in distribution.get("edges", ())]
    counts = [float(c) for c in distribution.get("counts", ())]
    if len(edges) < 2 or len(counts) != len(edges) - 1 or sum(counts) <= 0:
        return None
    if any(b <= a for a, b in itertools.pairwise(edges)) or min(counts) < 0:
        return None
    return Reference(tuple(edges), tuple(counts))


def psi(expected: Sequence[float], actual: Sequence[float], eps: float = PSI_EPSILON) -> float:
    """Return the population stability index of two histograms over the same bins.

    ``sum((a - e) * ln(a / e))`` over the bins' shares; shares below ``eps`` count as
    ``eps`` so an empty bin on one side does not make the index infinite.
    """
    if len(expected) != len(actual) or not expected:
        raise ValueError("histograms must have the same, non-zero number of bins")
    total_e = float(sum(expected))
    total_a = float(sum(actual))
    if total_e <= 0 or total_a <= 0:
        raise ValueError("histograms must not be empty")
    index = 0.0
    for e_count, a_count in zip(expected, actual, strict=True):
        e = max(e_count / total_e, eps)
        a = max(a_count / total_a, eps)
        index += (a - e) * math.log(a / e)
    return index


def histogram(scores: npt.NDArray[np.float64], edges: Sequence[float]) -> list[int]:
    """Count ``scores`` in the bins of ``edges`` (outside values go to the end bins)."""
    clipped = np.clip(scores, edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=np.asarray(edges, dtype=np.float64))
    return [int(c) for c in counts]


class ScoreWindow:
    """The last ``size`` scores, in a preallocated ring buffer (one copy per batch)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("window size must be >= 1")
        self.size = size
        self._buf = np.zeros(size, dtype=np.float64)
        self._next = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, scores: npt.ArrayLike) -> None:
        """Append a batch of scores, dropping the oldest beyond ``size``."""
        arr = np.asarray(scores, dtype=np.float64).ravel()
        if arr.size >= self.size:
            self._buf[:] = arr[-self.size :]
            self._next = 0
            self._count = self.size
            return
        end = self._next + arr.size
        if end <= self.size:
            self._buf[self._next : end] = arr
        else:
            split = self.size - self._next
            self._buf[self._next :] = arr[:split]
            self._buf[: end - self.size] = arr[split:]
        self._next = end % self.size
        self._count = min(self.size, self._count + arr.size)

    def values(self) -> npt.NDArray[np.float64]:
        """Return the scores held (a copy, in no particular order)."""
        return self._buf[: self._count].copy() if self._count < self.size else self._buf.copy()


def window_psi(window: ScoreWindow, reference: Reference) -> float | None:
    """Return the PSI of the window against the reference, or None while it is empty."""
    if len(window) == 0:
        return None
    return psi(reference.counts, histogram(window.values(), reference.edges))
