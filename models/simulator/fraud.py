"""Fraud scenarios: card testing, account takeover, amount spike, compromised merchant.

Fraud comes as *scenarios* whose transactions are spread over event time and merged into
the stream from a heap, so a scenario looks like it does in real life rather than like
isolated labelled rows. Takeovers happen mostly at night.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from models.simulator.catalog import (
    _N_ATMS,
    _N_MULES,
    _NIGHT_WEIGHT,
    COUNTRIES,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
)
from models.simulator.hashing import _F_DEVICE, _mix64_int, _skewed
from models.simulator.labelled import _device_id, _Step
from models.simulator.population import Population


class FraudScenarios(Population):
    """The fraud patterns, scheduled as steps on the stream's heap."""

    _testing_merchants: list[int]
    _cashout_merchants: list[int]
    _scenario_ids: Iterator[int]
    _scenario_names: list[str]
    _scenario_probs: list[float]
    _scenario_credit: list[float]

    @staticmethod
    def _expected_fraud_tx(pattern: str) -> float:
        if pattern == "card_testing":
            return 12.5 + 0.4  # 5..20 probes, 40 % followed by a purchase
        if pattern == "account_takeover":
            return 0.5 + 1.4  # an optional probe, then 1 or 2 drains
        if pattern == "amount_spike":
            return 1.3
        return 10.0 * 2.0  # ~10 victims with 1..3 fraudulent transactions each

    def _start_scenario(
        self,
        t0: int,
        population: int,
        heap: list[tuple[int, int, _Step]],
        seq: Iterator[int],
    ) -> None:
        rng = self.rng
        credit = self._scenario_credit
        for k, p in enumerate(self._scenario_probs):
            credit[k] += p
        k = max(range(len(credit)), key=credit.__getitem__)
        credit[k] -= 1.0
        pattern = self._scenario_names[k]
        sid = next(self._scenario_ids)
        steps: list[tuple[int, _Step]] = []
        if pattern == "card_testing":
            steps = self._card_testing(t0, int(self._draw_accounts(1, population)[0]), sid)
        elif pattern == "account_takeover":
            if rng.random() >= _NIGHT_WEIGHT[(t0 % DAY_MS) // HOUR_MS]:
                return  # takeovers happen mostly at night: thin the daytime candidates
            steps = self._account_takeover(t0, population, sid)
        elif pattern == "amount_spike":
            steps = self._amount_spike(t0, int(self._draw_accounts(1, population)[0]))
        else:
            steps = self._compromised_merchant(t0, population)
        self._push(steps, heap, seq)

    def _foreign_country(self, home: str, p_abroad: float) -> str:
        rng = self.rng
        if rng.random() >= p_abroad:
            return home
        while True:
            c = COUNTRIES[int(rng.integers(0, len(COUNTRIES)))]
            if c != home:
                return c

    def _card_testing(self, t0: int, account: int, sid: int) -> list[tuple[int, _Step]]:
        """5-20 tiny online charges within minutes at new merchants, maybe then a purchase."""
        rng = self.rng
        home = self._home(account)
        country = self._foreign_country(home, 0.6)
        device = f"dev-x{_mix64_int(self.seed * 1_000_003 + sid) & 0xFFFFFFFFFF:010x}"
        steps: list[tuple[int, _Step]] = []
        when = t0
        for _ in range(int(rng.integers(5, 21))):
            m = self._testing_merchants[int(rng.integers(0, len(self._testing_merchants)))]
            steps.append(
                (
                    when,
                    _Step(
                        account,
                        "card_testing",
                        "charge",
                        1,
                        amount=int(rng.integers(50, 501)),
                        counterparty=self._merchant_ids[m],
                        category=self._merchant_cat[m],
                        tx_type="CARD",
                        channel="online",
                        country=country,
                        device=device,
                    ),
                )
            )
            when += int(1_000 + rng.exponential(14_000))
        if rng.random() < 0.4:
            when += int(rng.uniform(2, 30) * MINUTE_MS)
            m = self._cashout_merchants[int(rng.integers(0, len(self._cashout_merchants)))]
            steps.append(
                (
                    when,
                    _Step(
                        account,
                        "card_testing",
                        "charge",
                        1,
                        amount=int(self._typical(account) * rng.uniform(4.0, 15.0)),
                        counterparty=self._merchant_ids[m],
                        category=self._merchant_cat[m],
                        tx_type="CARD",
                        channel="online",
                        country=country,
                        device=device,
                    ),
                )
            )
        return steps

    def _account_takeover(self, t0: int, population: int, sid: int) -> list[tuple[int, _Step]]:
        """New device, at an hour the owner is asleep, draining the balance to a mule."""
        rng = self.rng
        # The victim: of a few random accounts, the one least active at this hour.
        cands = self._draw_accounts(8, population)
        p = self._profiles(cands)
        hour = np.full(cands.shape, (t0 % DAY_MS) / HOUR_MS)
        k = int(np.argmin(self._activity(p, hour)))
        account = int(cands[k])
        home = COUNTRIES[int(p.country[k])]
        device = f"dev-x{_mix64_int(self.seed * 2_000_003 + sid) & 0xFFFFFFFFFF:010x}"
        country = self._foreign_country(home, 0.5)
        mule = f"cp-new-{int(rng.integers(0, _N_MULES)):05d}"
        steps: list[tuple[int, _Step]] = []
        when = t0
        if rng.random() < 0.5:  # a small probe transfer first
            steps.append(
                (
                    when,
                    _Step(
                        account,
                        "account_takeover",
                        "transfer",
                        1,
                        amount=int(rng.integers(100, 5_001)),
                        counterparty=mule,
                        tx_type="TRANSFER",
                        channel="web",
                        country=country,
                        device=device,
                    ),
                )
            )
            when += int(rng.uniform(1, 15) * MINUTE_MS)
        n_drains = 1 if rng.random() < 0.6 else 2
        for i in range(n_drains):
            last = i == n_drains - 1
            cash_out = rng.random() < 0.35
            steps.append(
                (
                    when,
                    _Step(
                        account,
                        "account_takeover",
                        "drain",
                        1,
                        fraction=float(rng.uniform(0.95, 1.0) if last else rng.uniform(0.4, 0.7)),
                        counterparty=f"atm-x{int(rng.integers(0, _N_ATMS)):05d}"
                        if cash_out
                        else mule,
                        tx_type="CASH_OUT" if cash_out else "TRANSFER",
                        channel="atm" if cash_out else "web",
                        country=country,
                        device=None if cash_out else device,
                    ),
                )
            )
            when += int(rng.uniform(1, 20) * MINUTE_MS)
        return steps

    def _amount_spike(self, t0: int, account: int) -> list[tuple[int, _Step]]:
        """The account suddenly spends 8-30x its own typical amount, once or twice."""
        rng = self.rng
        typical = self._typical(account)
        home = self._home(account)
        steps: list[tuple[int, _Step]] = []
        when = t0
        for _ in range(1 if rng.random() < 0.7 else 2):
            m = self._cashout_merchants[int(rng.integers(0, len(self._cashout_merchants)))]
            online = rng.random() < 0.7
            amount = int(typical * rng.uniform(8.0, 30.0))
            country = self._foreign_country(home, 0.3)
            device = _device_id(int(self._h.bits(np.array([account]), _F_DEVICE)[0] >> 16))
            steps.append(
                (
                    when,
                    self._fraud_charge(
                        account,
                        "amount_spike",
                        m,
                        amount,
                        "PAYMENT" if online else "CARD",
                        online,
                        country,
                        device if online else None,
                    ),
                )
            )
            when += int(rng.uniform(5, 60) * MINUTE_MS)
        return steps

    def _compromised_merchant(self, t0: int, population: int) -> list[tuple[int, _Step]]:
        """A breached terminal: its customers' cards are abused shortly after their visit.

        Only the visits are scheduled now; each visit schedules its own abuse when it
        happens (:meth:`_card_abuse`), which keeps the pending heap small at high rates.
        """
        rng = self.rng
        m = int(_skewed(np.array([rng.random()]), self.n_merchants)[0])
        duration = rng.uniform(0.3, 2.0) * HOUR_MS
        steps: list[tuple[int, _Step]] = []
        for _ in range(4 + int(rng.poisson(6))):
            account = int(self._draw_accounts(1, population)[0])
            typical = self._typical(account)
            visit = t0 + int(rng.uniform(0.0, duration))
            steps.append(
                (
                    visit,
                    _Step(
                        account,
                        "legit",
                        "charge",
                        0,
                        amount=max(1, int(typical * math.exp(0.55 * rng.standard_normal()))),
                        counterparty=self._merchant_ids[m],
                        category=self._merchant_cat[m],
                        tx_type="CARD",
                        channel="pos",
                        follow=int(rng.integers(1, 4)),
                    ),
                )
            )
        return steps

    def _card_abuse(self, visit: _Step, ts: int) -> list[tuple[int, _Step]]:
        """Larger purchases at unusual merchants with a card skimmed at ``ts``."""
        rng = self.rng
        account = visit.account
        typical = self._typical(account)
        home = self._home(account)
        when = ts + int(rng.uniform(10.0, 180.0) * MINUTE_MS)
        steps: list[tuple[int, _Step]] = []
        for _ in range(visit.follow):
            f = self._cashout_merchants[int(rng.integers(0, len(self._cashout_merchants)))]
            online = rng.random() < 0.6
            amount = int(typical * rng.uniform(3.0, 12.0))
            country = self._foreign_country(home, 0.6)
            device = f"dev-x{int(rng.integers(0, 1 << 40)):010x}" if online else None
            steps.append(
                (
                    when,
                    self._fraud_charge(
                        account, "compromised_merchant", f, amount, "CARD", online, country, device
                    ),
                )
            )
            when += int(rng.uniform(2.0, 60.0) * MINUTE_MS)
        return steps

    def _fraud_charge(
        self,
        account: int,
        pattern: str,
        merchant: int,
        amount: int,
        tx_type: str,
        online: bool,
        country: str | None,
        device: str | None,
    ) -> _Step:
        """Return a fraudulent charge at ``merchant`` (amount in cents)."""
        return _Step(
            account,
            pattern,
            "charge",
            1,
            amount=amount,
            counterparty=self._merchant_ids[merchant],
            category=self._merchant_cat[merchant],
            tx_type=tx_type,
            channel="online" if online else "pos",
            country=country,
            device=device,
        )
