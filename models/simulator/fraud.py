"""Fraud scenarios: card testing, account takeover, inflated amounts, compromised merchant.

Fraud comes as *scenarios* whose transactions are spread over event time and merged into
the stream from a heap, so a scenario looks like it does in real life rather than like
isolated labelled rows. Takeovers happen mostly at night. Two patterns act on the legit
stream itself rather than adding transactions of their own: a compromised card
(``inflated_amounts``) has a third of its own card payments inflated for a fortnight, and a
breached merchant (``compromised_merchant``) has every card that pays there during the
breach abused later. The stream asks :meth:`FraudScenarios._inflate` and
:meth:`FraudScenarios._breach_visit` about each card payment while one is active.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from models.simulator.catalog import (
    _CARD_PAYMENT_SHARE,
    _N_MULES,
    _NIGHT_MEAN,
    _NIGHT_WEIGHT,
    COUNTRIES,
    DAY_MS,
    HOUR_MS,
    INFLATED_DAYS,
    MINUTE_MS,
)
from models.simulator.hashing import _F_DEVICE, _mix64_int, _skewed
from models.simulator.labelled import _device_id, _Step
from models.simulator.population import Population

#: How account takeovers reach the account: the owner's own device and country (remote
#: access, an owner deceived into paying), the phone (a caller passing the security
#: questions: no device), or a stolen login from a new device. The first two at any hour.
TAKEOVER_ACCESS: dict[str, float] = {"own_device": 0.35, "phone": 0.15, "new_device": 0.50}

#: The large purchase that ends a card test is at least this much (cents).
_LARGE_PURCHASE_MIN = 15_000.0
#: A compromised card's inflated payments are this many times what the owner would pay.
_INFLATE_MIN, _INFLATE_MAX = 3.0, 8.0
#: Share of a compromised card's payments that the fraudster makes (and inflates).
_INFLATED_SHARE = 1.0 / 3.0


class FraudScenarios(Population):
    """The fraud patterns, scheduled as steps on the stream's heap."""

    _testing_merchants: list[int]
    _cashout_merchants: list[int]
    _scenario_ids: Iterator[int]
    _scenario_names: list[str]
    _scenario_probs: list[float]
    _scenario_credit: list[float]
    #: Compromised cards: account -> end of the fortnight its amounts are inflated (ms).
    _inflated: dict[int, int]
    #: Breached merchants: merchant index -> [cards still to be hit, end of the breach (ms)].
    _breached: dict[int, list[int]]

    def _expected_fraud_tx(self, pattern: str) -> float:
        if pattern == "card_testing":
            return 12.5 + 1.0  # 5..20 probes, then one large purchase
        if pattern == "account_takeover":
            return 0.3 + 1.4  # an optional probe, then 1 or 2 drains
        if pattern == "inflated_amounts":
            # A fortnight of the card's own payments, a third of them inflated.
            per_day = self.tx_per_account_per_day * _CARD_PAYMENT_SHARE
            return INFLATED_DAYS * per_day * _INFLATED_SHARE
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
            # From the owner's own device or by phone a takeover comes at any hour; from a
            # stolen login mostly at night. All are thinned to the same mean rate, so the
            # pattern's share holds.
            u = rng.random()
            if u < TAKEOVER_ACCESS["own_device"]:
                access = "own_device"
            elif u < TAKEOVER_ACCESS["own_device"] + TAKEOVER_ACCESS["phone"]:
                access = "phone"
            else:
                access = "new_device"
            night = access == "new_device"
            keep = _NIGHT_WEIGHT[(t0 % DAY_MS) // HOUR_MS] if night else _NIGHT_MEAN
            if rng.random() >= keep:
                return
            steps = self._account_takeover(t0, population, sid, access)
        elif pattern == "inflated_amounts":
            self._compromise_card(t0, population)
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
        """5-20 tiny online charges within minutes at new merchants, then one large purchase."""
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
        when += int(rng.uniform(2, 30) * MINUTE_MS)
        m = self._cashout_merchants[int(rng.integers(0, len(self._cashout_merchants)))]
        large = max(self._typical(account) * rng.uniform(5.0, 20.0), _LARGE_PURCHASE_MIN)
        steps.append(
            (
                when,
                _Step(
                    account,
                    "card_testing",
                    "charge",
                    1,
                    amount=int(large),
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

    def _account_takeover(
        self, t0: int, population: int, sid: int, access: str = "new_device"
    ) -> list[tuple[int, _Step]]:
        """The balance drained to a new payee: from a new device at night, or the owner's own.

        The victim is a regular account (one with a history to betray it); the money goes by
        TRANSFER to a mule account it has never paid: most or all of ``balance_before``,
        sometimes in two transfers, sometimes after a small probe to the same mule. ``access``
        is one of :data:`TAKEOVER_ACCESS`: from the account's usual device and country, or by
        phone (no device), only the drain itself betrays the transfers.
        """
        rng = self.rng
        # The victim: of a few regular accounts, the one least active at this hour when a
        # stolen login waits for the owner to sleep; any of them otherwise.
        cands = rng.integers(0, population, 8, dtype=np.int64)
        p = self._profiles(cands)
        hour = np.full(cands.shape, (t0 % DAY_MS) / HOUR_MS)
        k = int(np.argmin(self._activity(p, hour))) if access == "new_device" else 0
        account = int(cands[k])
        home = COUNTRIES[int(p.country[k])]
        channel = "web" if rng.random() < 0.6 else "mobile"
        device: str | None
        if access == "phone":
            device, country, channel = None, home, "phone"
        elif access == "own_device":
            # The stream's own device id of the account (see ``Stream``: bits >> 16).
            device = _device_id(int(self._h.bits(p.idx[k : k + 1], _F_DEVICE)[0]) >> 16)
            country = home
        else:
            device = f"dev-x{_mix64_int(self.seed * 2_000_003 + sid) & 0xFFFFFFFFFF:010x}"
            country = self._foreign_country(home, 0.5)
        mule = f"cp-new-{int(rng.integers(0, _N_MULES)):05d}"
        steps: list[tuple[int, _Step]] = []
        when = t0

        def transfer(kind: str, amount: int = 0, fraction: float = 0.0) -> _Step:
            return _Step(
                account,
                "account_takeover",
                kind,
                1,
                amount=amount,
                fraction=fraction,
                counterparty=mule,
                tx_type="TRANSFER",
                channel=channel,
                country=country,
                device=device,
            )

        if rng.random() < 0.3:  # a small probe transfer first
            steps.append((when, transfer("transfer", amount=int(rng.integers(100, 5_001)))))
            when += int(rng.uniform(1, 15) * MINUTE_MS)
        n_drains = 1 if rng.random() < 0.6 else 2
        for i in range(n_drains):
            last = i == n_drains - 1
            fraction = float(rng.uniform(0.95, 1.0) if last else rng.uniform(0.4, 0.7))
            steps.append((when, transfer("drain", fraction=fraction)))
            when += int(rng.uniform(1, 20) * MINUTE_MS)
        return steps

    def _compromise_card(self, t0: int, population: int) -> None:
        """A card's details are stolen: for a fortnight, a third of its payments are inflated.

        The fraudster's payments look like the owner's (same merchants, hours and device)
        but 3-8 times larger; the stream asks :meth:`_inflate` about each card payment.
        """
        account = int(self.rng.integers(0, population))
        self._inflated[account] = max(self._inflated.get(account, 0), t0 + INFLATED_DAYS * DAY_MS)

    def _seed_compromised_cards(self, start_ms: int, population: int, per_ms: float) -> None:
        """Start the stream in the steady state: cards compromised during the last fortnight.

        ``per_ms`` is the rate of new compromised cards; without these, the first fortnight
        of a history would hold too few inflated amounts.
        """
        rng = self.rng
        span = INFLATED_DAYS * DAY_MS
        n = int(rng.poisson(per_ms * span))
        accounts = rng.integers(0, population, n, dtype=np.int64).tolist()
        ends = (start_ms + span - rng.uniform(0.0, span, n)).astype(np.int64).tolist()
        inflated = self._inflated
        for account, end in zip(accounts, ends, strict=True):
            inflated[account] = max(inflated.get(account, 0), end)

    def _inflate(self, account: int, ts: int, cents: int) -> int:
        """Return the inflated amount of a compromised card's payment, or 0 if it is the owner's.

        A pure hash of (account, time) picks the payments, so the legit draws stay the same.
        """
        end = self._inflated[account]
        if ts >= end:
            del self._inflated[account]
            return 0
        bits = _mix64_int(self.seed * 0x9E3779B1 + account * 0x85EBCA77 + ts)
        if bits % 3 != 0:
            return 0
        factor = _INFLATE_MIN + (_INFLATE_MAX - _INFLATE_MIN) * ((bits >> 16) & 0xFFFF) / 65536.0
        return max(1, int(cents * factor))

    def _compromised_merchant(self, t0: int, population: int) -> list[tuple[int, _Step]]:
        """A breached terminal: every card that pays there during the breach is abused later.

        The breach opens at ``t0`` and closes after 0.3-2 hours or once ``4 + Poisson(6)``
        cards have paid there, whichever comes first (so a popular merchant on a fast
        stream does not turn the whole population into victims). Visits by those cards are
        scheduled too, so a quiet merchant still has its victims; a card of the ordinary
        stream that pays there meanwhile is hit the same way (:meth:`_breach_visit`).
        """
        rng = self.rng
        m = int(_skewed(np.array([rng.random()]), self.n_merchants)[0])
        duration = rng.uniform(0.3, 2.0) * HOUR_MS
        victims = 4 + int(rng.poisson(6))
        end = t0 + int(duration) + 1
        old = self._breached.get(m)
        if old is not None and old[1] > t0:  # still breached: the two breaches add up
            self._breached[m] = [victims + old[0], max(end, old[1])]
        else:
            self._breached[m] = [victims, end]
        steps: list[tuple[int, _Step]] = []
        for _ in range(victims):
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
                        breached_merchant=m,
                    ),
                )
            )
        return steps

    def _breach_visit(self, account: int, merchant: int, ts: int) -> list[tuple[int, _Step]]:
        """Return the abuse of a card that paid at ``merchant`` at ``ts``, if it is breached."""
        breach = self._breached.get(merchant)
        if breach is None:
            return []
        if ts >= breach[1]:
            del self._breached[merchant]
            return []
        breach[0] -= 1
        if breach[0] <= 0:
            del self._breached[merchant]
        return self._card_abuse(account, int(self.rng.integers(1, 4)), ts)

    def _card_abuse(self, account: int, count: int, ts: int) -> list[tuple[int, _Step]]:
        """Larger purchases at unusual merchants with a card skimmed at ``ts``."""
        rng = self.rng
        typical = self._typical(account)
        home = self._home(account)
        when = ts + int(rng.uniform(10.0, 180.0) * MINUTE_MS)
        steps: list[tuple[int, _Step]] = []
        for _ in range(count):
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
