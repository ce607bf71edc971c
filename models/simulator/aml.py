"""Money-laundering typologies (:data:`AML_PATTERNS`), labelled 1 like the fraud patterns.

They draw from their own random generator, so turning them on leaves the legit and fraud
draws unchanged. The AML rules in ``models/aml`` are written to catch them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.simulator.catalog import (
    _N_ATMS,
    _OCCASIONAL_POOL_FACTOR,
    AML_PATTERNS,
    DAY_MS,
    HIGH_RISK_COUNTRIES,
    HOUR_MS,
    MINUTE_MS,
)
from models.simulator.fraud import FraudScenarios
from models.simulator.labelled import SimulatedTx, _account_id, _Step


class AmlTypologies(FraudScenarios):
    """The typologies, each as the steps of one instance (structuring ring, mule, ...)."""

    _aml_rng: np.random.Generator

    def typology(self, name: str, t0: int, population: int | None = None) -> list[SimulatedTx]:
        """Return one complete instance of typology ``name`` starting at ``t0``, in order.

        For tests and backtests that need each typology on demand; the live stream mixes the
        same scenarios in when ``aml_rate`` > 0.
        """
        if name not in AML_PATTERNS:
            raise ValueError(f"unknown typology {name!r}; known: {', '.join(AML_PATTERNS)}")
        steps = self._typology_steps(name, t0, population or self.n_accounts)
        order = sorted(range(len(steps)), key=lambda i: (steps[i][0], i))
        return [self._emit(steps[i][1], steps[i][0]) for i in order]

    def _typology_steps(self, name: str, t0: int, population: int) -> list[tuple[int, _Step]]:
        rng = self._aml_rng
        account = int(rng.integers(0, population))
        if name == "structuring":
            return self._structuring_ring(t0, population)
        if name == "mule_fan_in":
            return self._mule_fan_in(t0, population)
        if name == "pass_through":
            return self._pass_through(t0, account)
        if name == "fan_out":
            return self._fan_out(t0, account, population)
        if name == "dormant_reactivation":
            # Beyond the occasional pool: no recent history, old activity back-dated by months.
            first = population * (1 + _OCCASIONAL_POOL_FACTOR)
            dormant = first + int(rng.integers(0, 1_000_000))
            return self._dormant(t0, dormant, population)
        if name == "round_amount":
            return self._round_amount(t0, account, population)
        return self._high_risk(t0, account, population)

    def _aml_step(self, account: int, pattern: str, amount_cents: int, **kw: Any) -> _Step:
        kw.setdefault("country", self._home(account))
        return _Step(account, pattern, "charge", 1, amount=max(1, amount_cents), **kw)

    def _new_payee(self, population: int) -> str:
        return _account_id(int(self._aml_rng.integers(0, population)))

    def _structuring_ring(self, t0: int, population: int) -> list[tuple[int, _Step]]:
        """3-5 members deposit cash just under 10,000, in a day or spread over a week."""
        rng = self._aml_rng
        steps: list[tuple[int, _Step]] = []
        for _ in range(int(rng.integers(3, 6))):
            member = int(rng.integers(0, population))
            branch = f"branch-{int(rng.integers(0, 400)):04d}"
            if rng.random() < 0.6:  # a burst of 3-4 deposits within a day
                times = sorted(t0 + int(rng.uniform(0, 20) * HOUR_MS) for _ in range(3))
                times += [times[-1] + int(rng.uniform(0.5, 3.5) * HOUR_MS)] * int(
                    rng.random() < 0.5
                )
                lower = 9_000_00
            else:  # one deposit a day for 5-6 days
                times = [t0 + d * DAY_MS + int(rng.uniform(0, 4) * HOUR_MS) for d in range(5)]
                times += [t0 + 5 * DAY_MS] * int(rng.random() < 0.5)
                lower = 8_000_00
            for when in times:
                amount = int(rng.integers(lower, 9_950_00))
                channel = "branch" if rng.random() < 0.7 else "atm"
                step = self._aml_step(
                    member,
                    "structuring",
                    amount,
                    counterparty=branch,
                    tx_type="CASH_IN",
                    channel=channel,
                )
                steps.append((when, step))
        return steps

    def _mule_fan_in(self, t0: int, population: int) -> list[tuple[int, _Step]]:
        """6-12 distinct senders each transfer a few hundred to a few thousand to one mule."""
        rng = self._aml_rng
        mule = self._new_payee(population)
        steps: list[tuple[int, _Step]] = []
        for _ in range(int(rng.integers(6, 13))):
            sender = int(rng.integers(0, population))
            when = t0 + int(rng.uniform(0, 18) * HOUR_MS)
            amount = int(rng.integers(300_00, 2_500_00))
            channel = "web" if rng.random() < 0.5 else "mobile"
            step = self._aml_step(
                sender,
                "mule_fan_in",
                amount,
                counterparty=mule,
                tx_type="TRANSFER",
                channel=channel,
            )
            steps.append((when, step))
        return steps

    def _pass_through(self, t0: int, account: int) -> list[tuple[int, _Step]]:
        """12,000-40,000 comes in, 85-98 % of it leaves within 1-4 hours."""
        rng = self._aml_rng
        total_in = int(rng.integers(12_000_00, 40_000_00))
        n_in = 1 if rng.random() < 0.6 else 2
        source = f"ext-bank-{int(rng.integers(0, 10_000)):05d}"
        steps: list[tuple[int, _Step]] = []
        when = t0
        for i in range(n_in):
            part = total_in // n_in if i < n_in - 1 else total_in - (total_in // n_in) * i
            step = self._aml_step(
                account,
                "pass_through",
                part,
                counterparty=source,
                tx_type="CASH_IN",
                channel="transfer_in",
            )
            steps.append((when, step))
            when += int(rng.uniform(5, 40) * MINUTE_MS)
        total_out = int(total_in * rng.uniform(0.85, 0.98))
        n_out = int(rng.integers(1, 4))
        when += int(rng.uniform(0.5, 2.0) * HOUR_MS)
        for i in range(n_out):
            part = total_out // n_out if i < n_out - 1 else total_out - (total_out // n_out) * i
            step = self._aml_step(
                account,
                "pass_through",
                part,
                counterparty=f"acc-x{int(rng.integers(0, 1 << 30)):09d}",
                tx_type="TRANSFER",
                channel="web",
            )
            steps.append((when, step))
            when += int(rng.uniform(2, 25) * MINUTE_MS)
        return steps

    def _fan_out(self, t0: int, account: int, population: int) -> list[tuple[int, _Step]]:
        """6-9 transfers to counterparties the account never paid, within hours."""
        rng = self._aml_rng
        steps: list[tuple[int, _Step]] = []
        when = t0
        for _ in range(int(rng.integers(6, 10))):
            amount = int(rng.integers(200_00, 3_000_00))
            step = self._aml_step(
                account,
                "fan_out",
                amount,
                counterparty=self._new_payee(population),
                tx_type="TRANSFER",
                channel="web",
            )
            steps.append((when, step))
            when += int(rng.uniform(5, 75) * MINUTE_MS)
        return steps

    def _dormant(self, t0: int, account: int, population: int) -> list[tuple[int, _Step]]:
        """Old small activity (back-dated 120-400 days), then a large transfer or withdrawal."""
        rng = self._aml_rng
        ago = int(rng.uniform(120, 400) * DAY_MS)
        steps: list[tuple[int, _Step]] = []
        n_old = int(rng.integers(1, 4))
        for i in range(n_old):
            step = self._aml_step(
                account,
                "dormant_reactivation",
                int(rng.integers(10_00, 200_00)),
                counterparty=self._merchant_ids[int(rng.integers(0, self.n_merchants))],
                tx_type="CARD",
                channel="pos",
                backdate_ms=ago - i * DAY_MS,
            )
            steps.append((t0, step))
        cash_out = rng.random() < 0.3
        amount = int(rng.integers(6_000_00, 40_000_00))
        step = self._aml_step(
            account,
            "dormant_reactivation",
            amount,
            counterparty=f"atm-x{int(rng.integers(0, _N_ATMS)):05d}"
            if cash_out
            else self._new_payee(population),
            tx_type="CASH_OUT" if cash_out else "TRANSFER",
            channel="atm" if cash_out else "web",
        )
        steps.append((t0 + int(rng.uniform(1, 30) * MINUTE_MS), step))
        return steps

    def _round_amount(self, t0: int, account: int, population: int) -> list[tuple[int, _Step]]:
        """One or two transfers of an exact multiple of 1,000, from 10,000 up."""
        rng = self._aml_rng
        steps: list[tuple[int, _Step]] = []
        when = t0
        for _ in range(1 if rng.random() < 0.6 else 2):
            amount = int(rng.integers(10, 51)) * 1_000_00
            step = self._aml_step(
                account,
                "round_amount",
                amount,
                counterparty=self._new_payee(population),
                tx_type="TRANSFER",
                channel="web",
            )
            steps.append((when, step))
            when += int(rng.uniform(1, 48) * HOUR_MS)
        return steps

    def _high_risk(self, t0: int, account: int, population: int) -> list[tuple[int, _Step]]:
        """Money sent to, or received from, a high-risk jurisdiction."""
        rng = self._aml_rng
        steps: list[tuple[int, _Step]] = []
        when = t0
        for _ in range(1 if rng.random() < 0.6 else 2):
            country = HIGH_RISK_COUNTRIES[int(rng.integers(0, len(HIGH_RISK_COUNTRIES)))]
            incoming = rng.random() < 0.3
            amount = int(rng.integers(1_000_00, 20_000_00))
            step = self._aml_step(
                account,
                "high_risk_jurisdiction",
                amount,
                counterparty=f"ext-{country.lower()}-{int(rng.integers(0, 1000)):04d}",
                tx_type="CASH_IN" if incoming else "TRANSFER",
                channel="transfer_in" if incoming else "web",
                extra={"counterparty_country": country},
            )
            steps.append((when, step))
            when += int(rng.uniform(1, 30) * HOUR_MS)
        return steps
