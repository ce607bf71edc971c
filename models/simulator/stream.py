"""The stream: legit traffic a block at a time, with fraud and typologies merged in.

Per-account velocity must stay realistic whatever the stream rate, so the population grows
with the rate. The live stream keeps a constant rate around the clock while each account is
active mostly in its own hours (thinning by the account's activity, normalised by the
population's activity at that hour). Legit traffic is generated a block at a time with numpy
and only turned into dicts in a tight Python loop: that is what keeps
:meth:`Simulator.events` well above 20,000 tx/s.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from models.simulator.aml import AmlTypologies
from models.simulator.catalog import (
    _AML_TX_PER_SCENARIO,
    _BALANCE_GENERATION,
    _BLOCK,
    _CARD,
    _CASH_IN,
    _CASH_OUT,
    _CASHOUT_CATEGORIES,
    _CATEGORY_WEIGHTS,
    _COUNTRY_WEIGHTS,
    _HOUR_SLOTS,
    _N_ATMS,
    _N_EMPLOYERS,
    _NIGHT_MEAN,
    _SLOT_MS,
    _TESTING_CATEGORIES,
    _TRANSFER,
    _TYPE_PROBS,
    _TYPES,
    AML_PATTERNS,
    CATEGORIES,
    COUNTRIES,
    CURRENCY_OF,
    DAY_MS,
    FRAUD_MIX,
    HOUR_MS,
    OCCASIONAL_SHARE,
)
from models.simulator.hashing import (
    _F_ATM,
    _F_DEVICE,
    _F_EMPLOYER,
    _F_N_PAYEES,
    _F_N_USUAL,
    _F_PAYEE,
    _U64,
    _Hasher,
    _mix64,
    _skewed,
)
from models.simulator.labelled import SimulatedTx, _account_id, _device_id, _Step

log = logging.getLogger(__name__)


class Simulator(AmlTypologies):
    """Seeded generator of realistic, labelled transaction streams.

    ``events`` continues the same transaction counter, random generator and balances across
    calls, so ids stay unique; a fresh instance with the same seed and arguments yields the
    same stream. ``id_prefix`` (default ``tx-{seed}``) lets two runs with the same seed feed
    one system without their tx_ids colliding (a repeated tx_id is treated as a replay).
    ``occasional_share`` of the transactions come from accounts that are rarely active and
    so have little or no history, as every account has for a worker that just started.

    ``aml_rate`` is the share of transactions that belong to money-laundering typologies
    (:data:`AML_PATTERNS`, default 0: off). They draw from their own random generator, so
    turning them on leaves the legit and fraud draws unchanged (only tx_ids and balances of
    the accounts involved differ). A dormant reactivation emits the account's old activity
    back-dated by months just before the reactivation: late events, as a replayed archive
    would deliver them.
    """

    def __init__(
        self,
        seed: int = 7,
        n_accounts: int = 5000,
        n_merchants: int = 500,
        fraud_rate: float = 0.01,
        tx_per_account_per_day: float = 4.0,
        id_prefix: str | None = None,
        occasional_share: float = OCCASIONAL_SHARE,
        aml_rate: float = 0.0,
    ) -> None:
        if n_accounts < 1 or n_merchants < 1:
            raise ValueError("n_accounts and n_merchants must be >= 1")
        if not 0.0 <= fraud_rate < 0.5:
            raise ValueError("fraud_rate must be in [0, 0.5)")
        if tx_per_account_per_day <= 0:
            raise ValueError("tx_per_account_per_day must be > 0")
        if not 0.0 <= occasional_share < 1.0:
            raise ValueError("occasional_share must be in [0, 1)")
        if not 0.0 <= aml_rate < 0.5:
            raise ValueError("aml_rate must be in [0, 0.5)")
        self.seed = seed
        self.aml_rate = aml_rate
        self._aml_rng = np.random.default_rng([seed, 0xA317])
        self._aml_turn = itertools.count()
        self.n_accounts = n_accounts
        self.n_merchants = n_merchants
        self.fraud_rate = fraud_rate
        self.tx_per_account_per_day = tx_per_account_per_day
        self.occasional_share = occasional_share
        self.id_prefix = id_prefix if id_prefix is not None else f"tx-{seed}"
        self.rng = np.random.default_rng(seed)
        self._h = _Hasher(seed, 0xACC0)
        self._counter = itertools.count()
        self._scenario_ids = itertools.count()

        midx = np.arange(n_merchants, dtype=np.int64)
        mh = _Hasher(seed, 0x3E4C)
        cat_cdf = np.cumsum(_CATEGORY_WEIGHTS) / sum(_CATEGORY_WEIGHTS)
        mcat = np.searchsorted(cat_cdf, mh.unit(midx, 0), side="right")
        self._merchant_ids = [f"m-{i:05d}" for i in range(n_merchants)]
        self._merchant_cat = [CATEGORIES[int(c)] for c in mcat]
        self._testing_merchants = self._merchants_in(_TESTING_CATEGORIES)
        self._cashout_merchants = self._merchants_in(_CASHOUT_CATEGORIES)
        self._country_cdf = np.cumsum(_COUNTRY_WEIGHTS) / sum(_COUNTRY_WEIGHTS)
        self._type_cdf = np.cumsum(_TYPE_PROBS) / sum(_TYPE_PROBS)

        # Population mean of the activity weight per quarter hour: dividing by it keeps the
        # stream's rate constant while each account stays active mostly in its own hours.
        sample = self._profiles(np.arange(20_000, dtype=np.int64) * 7919 + 13)
        slot_hours = (np.arange(_HOUR_SLOTS) + 0.5) * 24.0 / _HOUR_SLOTS
        weights = self._activity(sample, slot_hours[:, None])
        self._w_table = weights.mean(axis=1)
        self._w_min = float(self._w_table.min())

        # Scenario mix. Candidates for scenarios arrive as one Poisson process; a candidate
        # becomes a pattern with a probability chosen so that the *transaction* shares match
        # FRAUD_MIX. Takeovers are then thinned by the hour (they happen mostly at night),
        # so their candidate share is boosted by the inverse of the mean night weight.
        names = list(FRAUD_MIX)
        per = np.array([self._expected_fraud_tx(n) for n in names])
        kept = np.array([_NIGHT_MEAN if n == "account_takeover" else 1.0 for n in names])
        raw = np.array([FRAUD_MIX[n] for n in names]) / per / kept
        probs = raw / raw.sum()
        self._scenario_names = names
        self._scenario_probs = probs.tolist()
        # Smooth weighted round robin over patterns: the mix stays on target even in a short
        # history, where independent draws of a few large scenarios would swing it widely.
        self._scenario_credit = self.rng.random(len(names)).tolist()
        self._fraud_per_candidate = float((probs * kept * per).sum())
        self._visits_per_candidate = float(probs[names.index("compromised_merchant")] * 10.0)
        self._inflated = {}
        self._breached = {}
        self._cards_seeded = False

        # Balances: exact for recently active and for in-scenario accounts.
        self._cache_cap = max(_BALANCE_GENERATION, n_accounts)
        self._bal_new: dict[int, int] = {}
        self._bal_old: dict[int, int] = {}
        self._pinned: dict[int, int] = {}

    def events(self, start_ms: int, rate_per_s: float) -> Iterator[SimulatedTx]:
        """Endless stream in non-decreasing event time, ``rate_per_s`` tx per event second.

        Arrivals are Poisson; the account population is :meth:`population` so that each
        account makes only a few transactions a day of event time, whatever the rate.
        """
        return self._stream(start_ms, rate_per_s, self.population(rate_per_s), None)

    def _stream(
        self, start_ms: int, rate_per_s: float, population: int, end_ms: int | None
    ) -> Iterator[SimulatedTx]:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        rng = self.rng
        h = self._h
        rate_ms = rate_per_s / 1000.0
        scenario_rate_ms = rate_ms * self.fraud_rate / self._fraud_per_candidate
        legit_rate_ms = rate_ms - scenario_rate_ms * (
            self._fraud_per_candidate + self._visits_per_candidate
        )
        cand_gap_ms = self._w_min / legit_rate_ms  # thinned down to the legit rate
        log.debug(
            "simulating %.1f tx/s over %d accounts (%.2f scenarios/hour)",
            rate_per_s,
            population,
            scenario_rate_ms * HOUR_MS,
        )
        t = float(start_ms)
        heap: list[tuple[int, int, _Step]] = []
        seq = itertools.count()
        next_scenario = (
            start_ms + rng.exponential(1.0 / scenario_rate_ms) if scenario_rate_ms > 0 else math.inf
        )
        aml_rate_ms = rate_ms * self.aml_rate / _AML_TX_PER_SCENARIO
        next_aml = (
            start_ms + self._aml_rng.exponential(1.0 / aml_rate_ms) if aml_rate_ms > 0 else math.inf
        )
        if scenario_rate_ms > 0 and not self._cards_seeded:
            share = self._scenario_probs[self._scenario_names.index("inflated_amounts")]
            self._seed_compromised_cards(start_ms, population, scenario_rate_ms * share)
        self._cards_seeded = True
        next_due = min(next_scenario, next_aml)
        inflated = self._inflated
        breached = self._breached
        prefix = self.id_prefix
        counter = self._counter
        merchant_ids = self._merchant_ids
        merchant_cat = self._merchant_cat
        n_merchants = self.n_merchants
        types = _TYPES
        type_cdf = self._type_cdf
        w_table = self._w_table
        w_min = self._w_min
        balance = self._balance
        set_balance = self._set_balance
        new_sim = SimulatedTx

        while True:
            # ---- one block of legit candidates, thinned by each account's activity ----
            gaps = rng.exponential(cand_gap_ms, _BLOCK)
            tcand = t + np.cumsum(gaps)
            t = float(tcand[-1])
            acc = self._draw_accounts(_BLOCK, population)
            prof = self._profiles(acc)
            hour = (tcand % DAY_MS) / HOUR_MS
            slot = ((tcand % DAY_MS) // _SLOT_MS).astype(np.int64)
            keep = rng.random(_BLOCK) * w_table[slot] < self._activity(prof, hour) * w_min
            acc = acc[keep]
            n = int(acc.size)
            ts_arr = tcand[keep].astype(np.int64)
            typical = prof.typical[keep]
            country = prof.country[keep]
            bal0 = prof.balance0[keep].astype(np.int64)

            # ---- per-transaction draws, vectorised ----
            ttype = np.searchsorted(type_cdf, rng.random(n), side="right")
            noise = np.exp(0.55 * rng.standard_normal(n))
            amount = typical * noise
            big = rng.random(n) < 0.012  # a legit big-ticket purchase now and then
            amount = np.where(big & (ttype <= _CARD), amount * rng.uniform(5.0, 20.0, n), amount)
            amount = np.where(ttype == _TRANSFER, amount * rng.uniform(1.0, 6.0, n), amount)
            amount = np.where(ttype == _CASH_IN, typical * rng.uniform(10.0, 30.0, n), amount)
            cash = np.maximum(1, np.round(amount / 2000.0)) * 2000.0
            amount = np.where(ttype == _CASH_OUT, cash, amount)
            cents = np.maximum(amount.round(), 1.0).astype(np.int64)
            topup = (typical * rng.uniform(10.0, 40.0, n)).astype(np.int64)
            u_new = rng.random(n)
            u_slot = rng.random(n)
            n_usual = 3 + h.pick(acc, _F_N_USUAL, 6)
            slot_j = (u_slot * n_usual).astype(np.int64)
            usual_m = self._usual_merchant(acc, slot_j)
            other_m = _skewed(rng.random(n), n_merchants)
            merchant = np.where(u_new < 0.1, other_m, usual_m)
            n_payees = 1 + h.pick(acc, _F_N_PAYEES, 4)
            payee_slot = (u_slot * n_payees).astype(np.int64)
            payee = (
                _mix64(h.bits(acc, _F_PAYEE) + payee_slot.astype(np.uint64)) % _U64(population)
            ).astype(np.int64)
            payee = np.where(u_new < 0.12, rng.integers(0, population, n), payee)
            atm = (
                _mix64(h.bits(acc, _F_ATM) + (u_slot < 0.2).astype(np.uint64)) % _U64(_N_ATMS)
            ).astype(np.int64)
            employer = h.pick(acc, _F_EMPLOYER, _N_EMPLOYERS)
            device = h.bits(acc, _F_DEVICE) >> _U64(16)
            abroad = rng.random(n) < 0.04
            tx_country = np.where(
                abroad,
                np.searchsorted(self._country_cdf, rng.random(n), side="right"),
                country,
            )
            u_chan = rng.random(n)
            drain = (ttype == _TRANSFER) & (rng.random(n) < 0.008)  # moving savings, legit
            drain_frac = rng.uniform(0.6, 0.95, n)

            cols = zip(
                acc.tolist(),
                ts_arr.tolist(),
                ttype.tolist(),
                cents.tolist(),
                bal0.tolist(),
                topup.tolist(),
                merchant.tolist(),
                payee.tolist(),
                atm.tolist(),
                employer.tolist(),
                device.tolist(),
                country.tolist(),
                tx_country.tolist(),
                u_chan.tolist(),
                drain.tolist(),
                drain_frac.tolist(),
                strict=True,
            )
            for a, ts, ty, amt, b0, top, m, pay, at, emp, dev, home, ctry, uc, dr, df in cols:
                if ts >= next_due:
                    # Fraud due up to this moment goes first (up to the end of a history).
                    until = ts if end_ms is None else min(ts, end_ms - 1)
                    while True:
                        if next_scenario <= until:
                            self._start_scenario(int(next_scenario), population, heap, seq)
                            next_scenario += rng.exponential(1.0 / scenario_rate_ms)
                        elif next_aml <= until:
                            name = AML_PATTERNS[next(self._aml_turn) % len(AML_PATTERNS)]
                            steps = self._typology_steps(name, int(next_aml), population)
                            self._push(steps, heap, seq)
                            next_aml += self._aml_rng.exponential(1.0 / aml_rate_ms)
                        elif heap and heap[0][0] <= until:
                            when, _, step = heapq.heappop(heap)
                            if step.breached_merchant >= 0:
                                abuse = self._breach_visit(
                                    step.account, step.breached_merchant, when
                                )
                                self._push(abuse, heap, seq)
                            yield self._emit(step, when)
                        else:
                            break
                    next_due = min(next_scenario, next_aml, heap[0][0] if heap else math.inf)
                if end_ms is not None and ts >= end_ms:
                    return
                label, pattern = 0, "legit"
                if ty <= 1 and (inflated or breached):  # a card payment, while fraud is afoot
                    if a in inflated:
                        inflated_amt = self._inflate(a, ts, amt)
                        if inflated_amt:
                            amt, label, pattern = inflated_amt, 1, "inflated_amounts"
                    if m in breached:
                        abuse = self._breach_visit(a, m, ts)
                        if abuse:
                            self._push(abuse, heap, seq)
                            next_due = min(next_due, heap[0][0])
                bal = balance(a, b0)
                if ty == 5:  # CASH_IN
                    after = bal + amt
                else:
                    if dr:
                        amt = max(1, int(bal * df))
                    if amt > bal:
                        bal += amt + top  # income we do not observe
                    after = bal - amt
                set_balance(a, after)
                home_c = COUNTRIES[home]
                tx: dict[str, Any] = {
                    "tx_id": f"{prefix}-{next(counter)}",
                    "ts": ts,
                    "account_id": _account_id(a),
                    "amount": amt / 100,
                }
                if ty <= 2:  # PAYMENT, CARD, DEBIT at a merchant
                    tx["counterparty_id"] = merchant_ids[m]
                    if ty == 0:
                        channel = "online" if uc < 0.6 else "mobile"
                    elif ty == 1:
                        channel = "pos" if uc < 0.75 else "online"
                    else:
                        channel = "direct_debit"
                elif ty == 3:
                    tx["counterparty_id"] = _account_id(pay)
                    channel = "mobile" if uc < 0.65 else "web"
                elif ty == 4:
                    tx["counterparty_id"] = f"atm-{at:05d}"
                    channel = "atm"
                else:
                    tx["counterparty_id"] = f"emp-{emp:05d}"
                    channel = "branch" if uc < 0.1 else "transfer_in"
                tx["currency"] = CURRENCY_OF[home_c]
                tx["type"] = types[ty]
                tx["channel"] = channel
                tx["country"] = COUNTRIES[ctry]
                if channel in ("online", "mobile", "web"):
                    tx["device_id"] = _device_id(dev)
                if ty <= 2:
                    tx["merchant_category"] = merchant_cat[m]
                tx["balance_before"] = bal / 100
                tx["balance_after"] = after / 100
                yield new_sim(tx, label, pattern)


def simulate_history(
    seed: int,
    n_accounts: int,
    days: float,
    start_ms: int,
    tx_per_account_per_day: float = 4.0,
    fraud_rate: float = 0.01,
    n_merchants: int = 500,
    occasional_share: float = OCCASIONAL_SHARE,
    aml_rate: float = 0.0,
) -> list[SimulatedTx]:
    """Return a finite, event-time-ordered history of a fixed population, for training.

    It is a prefix of the same stream :meth:`Simulator.events` produces, with the population
    pinned to ``n_accounts``, so training data and live traffic share one distribution.
    """
    sim = Simulator(
        seed=seed,
        n_accounts=n_accounts,
        n_merchants=n_merchants,
        fraud_rate=fraud_rate,
        tx_per_account_per_day=tx_per_account_per_day,
        occasional_share=occasional_share,
        aml_rate=aml_rate,
    )
    rate = n_accounts * tx_per_account_per_day / 86_400.0 / (1.0 - occasional_share)
    end_ms = start_ms + int(days * DAY_MS)
    return list(sim._stream(start_ms, rate, n_accounts, end_ms))
