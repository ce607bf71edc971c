"""The accounts: procedural profiles, activity by hour, who transacts, and balances.

Balances are exact for recently active accounts (a bounded, generational cache) and for
every account inside a fraud scenario (pinned); an account not seen for a long time gets
its procedural balance back, as if income we do not observe had arrived meanwhile.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from models.simulator.catalog import (
    _ACTIVITY_FLOOR,
    _HOUR_SLOTS,
    _OCCASIONAL_POOL_FACTOR,
    COUNTRIES,
    CURRENCY_OF,
)
from models.simulator.hashing import (
    _F_BALANCE,
    _F_CENTER,
    _F_COUNTRY,
    _F_DEVICE,
    _F_N_USUAL,
    _F_SPREAD,
    _F_TYPICAL,
    _F_USUAL_MERCHANT,
    _Hasher,
    _mix64,
    _skewed,
    _to_unit,
)
from models.simulator.labelled import SimulatedTx, _account_id, _device_id, _Step


@dataclass(slots=True)
class _Profiles:
    """Profiles of a batch of accounts (arrays aligned with the account indices)."""

    idx: npt.NDArray[np.int64]
    typical: npt.NDArray[np.float64]  # typical amount, in cents
    center: npt.NDArray[np.float64]  # centre of the active hours (UTC hour, 0..24)
    spread: npt.NDArray[np.float64]  # width of the active hours (hours)
    country: npt.NDArray[np.int64]
    balance0: npt.NDArray[np.float64]  # balance in cents when first seen


class Population:
    """Profiles, activity and balances of the accounts; the base of :class:`Simulator`.

    Scheduled scenario steps become documents here (:meth:`_emit`), against the balances.
    Its state is set up by ``Simulator.__init__``.
    """

    seed: int
    n_accounts: int
    n_merchants: int
    occasional_share: float
    tx_per_account_per_day: float
    id_prefix: str
    rng: np.random.Generator
    _h: _Hasher
    _counter: Iterator[int]
    _merchant_ids: list[str]
    _merchant_cat: list[str]
    _country_cdf: npt.NDArray[np.float64]
    _w_table: npt.NDArray[np.float64]
    _cache_cap: int
    _bal_new: dict[int, int]
    _bal_old: dict[int, int]
    _pinned: dict[int, int]

    def _merchants_in(self, categories: tuple[str, ...]) -> list[int]:
        found = [i for i, c in enumerate(self._merchant_cat) if c in categories]
        return found or list(range(self.n_merchants))

    def _profiles(self, idx: npt.NDArray[np.int64]) -> _Profiles:
        h = self._h
        typical = np.exp(np.log(3500.0) + 0.9 * h.normal(idx, _F_TYPICAL))  # median $35
        typical = np.clip(typical, 150.0, 500_000.0)
        center = (14.0 + 3.0 * h.normal(idx, _F_CENTER)) % 24.0
        spread = 2.0 + 2.5 * h.unit(idx, _F_SPREAD)
        country = np.searchsorted(self._country_cdf, h.unit(idx, _F_COUNTRY), side="right")
        balance0 = typical * np.exp(3.2 + 0.8 * h.normal(idx, _F_BALANCE))
        return _Profiles(idx, typical, center, spread, country.astype(np.int64), balance0)

    def _usual_merchant(
        self, acc: npt.NDArray[np.int64], slot: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Return the usual merchant number ``slot`` of each account (stable, procedural)."""
        bits = _mix64(self._h.bits(acc, _F_USUAL_MERCHANT) + slot.astype(np.uint64))
        return _skewed(_to_unit(bits), self.n_merchants)

    @staticmethod
    def _activity(p: _Profiles, hour: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the relative activity (floor..1) of accounts at a UTC hour of day."""
        d = np.abs(hour - p.center)
        d = np.minimum(d, 24.0 - d)
        bump = np.exp(-0.5 * (d / p.spread) ** 2)
        out: npt.NDArray[np.float64] = _ACTIVITY_FLOOR + (1.0 - _ACTIVITY_FLOOR) * bump
        return out

    def profile(self, account: int) -> dict[str, Any]:
        """Return the stable profile of one account (for tests, views and debugging)."""
        p = self._profiles(np.array([account], dtype=np.int64))
        idx = p.idx
        n_usual = 3 + int(self._h.pick(idx, _F_N_USUAL, 6)[0])
        slots = np.arange(n_usual, dtype=np.int64)
        usual = self._usual_merchant(np.repeat(idx, n_usual), slots)
        merchants = [self._merchant_ids[int(m)] for m in usual]
        country = COUNTRIES[int(p.country[0])]
        return {
            "account_id": _account_id(account),
            "typical_amount": round(float(p.typical[0]) / 100.0, 2),
            "active_center_hour_utc": float(p.center[0]),
            "active_spread_hours": float(p.spread[0]),
            "country": country,
            "currency": CURRENCY_OF[country],
            "device_id": _device_id(int(self._h.bits(idx, _F_DEVICE)[0]) >> 16),
            "usual_merchants": merchants,
        }

    def population(self, rate_per_s: float) -> int:
        """Return how many regular accounts a stream of ``rate_per_s`` needs.

        Sized so that each makes ``tx_per_account_per_day`` a day whatever the rate; the
        occasional accounts come on top, from a pool a hundred times larger.
        """
        regular_rate = rate_per_s * (1.0 - self.occasional_share)
        needed = regular_rate * 86_400.0 / self.tx_per_account_per_day
        return max(self.n_accounts, math.ceil(needed - 1e-6))

    def velocity_factor(self, sample: int = 20_000) -> float:
        """Return the worst account's daily activity relative to the average (a sanity bound).

        An account makes on average ``tx_per_account_per_day`` transactions a day; the most
        night-active accounts of a sample make this many times more.
        """
        p = self._profiles(np.arange(sample, dtype=np.int64))
        slot_hours = (np.arange(_HOUR_SLOTS) + 0.5) * 24.0 / _HOUR_SLOTS
        w = self._activity(p, slot_hours[:, None]) / self._w_table[:, None]
        return float(w.mean(axis=0).max())

    def _draw_accounts(self, n: int, population: int) -> npt.NDArray[np.int64]:
        """Draw account indices: regular accounts, or occasional ones from a far larger pool.

        Occasional accounts (indices from ``population`` up) transact a few times a year, so
        their transactions come with little or no history: the same situation as every
        account of a worker that has just started with empty tables. Having them in the
        training data is what keeps a fresh deployment from alerting on every new payee.
        """
        acc = self.rng.integers(0, population, n, dtype=np.int64)
        if self.occasional_share > 0.0:
            occasional = self.rng.random(n) < self.occasional_share
            pool = population * _OCCASIONAL_POOL_FACTOR
            acc = np.where(occasional, population + self.rng.integers(0, pool, n), acc)
        return acc

    def _balance(self, account: int, default: int) -> int:
        bal = self._bal_new.get(account)
        if bal is None:
            bal = self._bal_old.get(account, default)
        return bal

    def _set_balance(self, account: int, value: int) -> None:
        new = self._bal_new
        new[account] = value
        if len(new) > self._cache_cap:
            # Rotate generations; in-scenario accounts keep their exact balance.
            old = self._bal_old
            keep = {a: new.get(a, old.get(a, 0)) for a in self._pinned if a in new or a in old}
            self._bal_old = new
            self._bal_new = keep

    def _default_balance(self, account: int) -> int:
        p = self._profiles(np.array([account], dtype=np.int64))
        return int(p.balance0[0])

    def _typical(self, account: int) -> float:
        return float(self._profiles(np.array([account], dtype=np.int64)).typical[0])

    def _home(self, account: int) -> str:
        p = self._profiles(np.array([account], dtype=np.int64))
        return COUNTRIES[int(p.country[0])]

    def _push(
        self,
        steps: list[tuple[int, _Step]],
        heap: list[tuple[int, int, _Step]],
        seq: Iterator[int],
    ) -> None:
        for when, step in steps:
            self._pinned[step.account] = self._pinned.get(step.account, 0) + 1
            heapq.heappush(heap, (when, next(seq), step))

    def _emit(self, step: _Step, ts: int) -> SimulatedTx:
        """Turn a scheduled step into a document, against the account's current balance."""
        a = step.account
        bal = self._balance(a, self._default_balance(a))
        drained = int(bal * step.fraction) if step.kind == "drain" else step.amount
        amt = max(1, drained)
        if step.tx_type == "CASH_IN":
            after = bal + amt
        else:
            if amt > bal:
                bal += amt + int(self._typical(a) * 5)  # overdraft facility / unseen income
            after = bal - amt
        self._set_balance(a, after)
        left = self._pinned.get(a, 1) - 1
        if left > 0:
            self._pinned[a] = left
        else:
            self._pinned.pop(a, None)
        country = step.country or self._home(a)
        tx: dict[str, Any] = {
            "tx_id": f"{self.id_prefix}-{next(self._counter)}",
            "ts": ts - step.backdate_ms,
            "account_id": _account_id(a),
            "amount": amt / 100,
            "counterparty_id": step.counterparty,
            "currency": CURRENCY_OF[self._home(a)],
            "type": step.tx_type,
            "channel": step.channel,
            "country": country,
        }
        if step.device is not None:
            tx["device_id"] = step.device
        if step.category is not None:
            tx["merchant_category"] = step.category
        if step.extra:
            tx.update(step.extra)
        tx["balance_before"] = bal / 100
        tx["balance_after"] = after / 100
        return SimulatedTx(tx, step.label, step.pattern)
