"""Procedural hashing: an account's profile is a pure function of (seed, index).

A population of hundreds of millions cannot be materialised, so every account's profile is
derived from its index with a 64-bit hash (splitmix64) and costs no memory.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_M64 = (1 << 64) - 1
_U64 = np.uint64


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Return splitmix64's finaliser of ``x`` (uint64 arithmetic wraps, as intended)."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _mix64_int(x: int) -> int:
    """Scalar twin of :func:`_mix64` on Python ints (no numpy overflow warnings)."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _to_unit(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Map 64-bit hashes to uniforms in [0, 1)."""
    return (h >> _U64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


class _Hasher:
    """Keyed hash of ``(index, field)`` pairs; one instance per seed."""

    def __init__(self, seed: int, salt: int) -> None:
        self.key = _U64(_mix64_int(seed * 0x9E3779B97F4A7C15 + salt))

    def bits(self, idx: npt.NDArray[np.int64], field: int) -> npt.NDArray[np.uint64]:
        """Return a 64-bit hash per index for ``field`` (< 256)."""
        x = (idx.astype(np.uint64) << _U64(8)) | _U64(field)
        return _mix64(x ^ self.key)

    def unit(self, idx: npt.NDArray[np.int64], field: int) -> npt.NDArray[np.float64]:
        """Return a uniform in [0, 1) per index for ``field``."""
        return _to_unit(self.bits(idx, field))

    def normal(self, idx: npt.NDArray[np.int64], field: int) -> npt.NDArray[np.float64]:
        """Return a standard normal per index (Box-Muller on fields ``field``, ``field+1``)."""
        u1 = 1.0 - self.unit(idx, field)
        u2 = self.unit(idx, field + 1)
        out: npt.NDArray[np.float64] = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        return out

    def pick(self, idx: npt.NDArray[np.int64], field: int, n: int) -> npt.NDArray[np.int64]:
        """Return an integer in ``[0, n)`` per index."""
        return (self.bits(idx, field) % _U64(n)).astype(np.int64)


# Hash fields of an account profile.
_F_TYPICAL, _F_CENTER, _F_SPREAD, _F_COUNTRY, _F_BALANCE = 0, 2, 4, 5, 6
_F_DEVICE, _F_N_USUAL, _F_N_PAYEES, _F_EMPLOYER = 8, 9, 10, 11
_F_USUAL_MERCHANT = 16  # .. 16 + 7
_F_PAYEE = 32  # .. 32 + 3
_F_ATM = 48  # .. 48 + 1


def _skewed(u: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.int64]:
    """Map uniforms to ``[0, n)`` with a popularity skew towards low indices."""
    return np.minimum((u * u * n).astype(np.int64), n - 1)
