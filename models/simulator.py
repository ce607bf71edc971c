"""Transaction simulator with labelled fraud patterns, for training, demos and load tests.

Why it is built this way:

* Per-account velocity must stay realistic whatever the stream rate, so the population grows
  with the rate (``rate * 86400 / tx_per_account_per_day`` regular accounts, plus a pool of
  occasional accounts a hundred times larger that makes ``occasional_share`` of the traffic).
  A population of hundreds of millions cannot be materialised, so every account's profile is
  derived procedurally from its index with a 64-bit hash (splitmix64) and costs no memory.
* The live stream keeps a constant rate around the clock while each account is active
  mostly in its own hours (thinning by the account's activity, normalised by the population's
  activity at that hour); takeovers happen mostly at night.
* Legit traffic is generated a block at a time with numpy and only turned into dicts in a
  tight Python loop: that is what keeps :meth:`Simulator.events` well above 20,000 tx/s.
* Fraud comes as *scenarios* (a burst, a takeover, a spike, a breached merchant) whose
  transactions are spread over event time and merged into the stream from a heap, so a
  scenario looks like it does in real life rather than like isolated labelled rows.
* Balances are exact for recently active accounts (a bounded, generational cache) and for
  every account inside a fraud scenario (pinned); an account not seen for a long time gets
  its procedural balance back, as if income we do not observe had arrived meanwhile.

Event times are epoch milliseconds, so every hour below is a UTC hour, the same clock the
``hour_of_day`` feature reads for epoch-ms input. The label never goes into the transaction
document: it travels next to it in :class:`SimulatedTx`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

PATTERNS: tuple[str, ...] = (
    "legit",
    "card_testing",
    "account_takeover",
    "amount_spike",
    "compromised_merchant",
)
FRAUD_PATTERNS: tuple[str, ...] = PATTERNS[1:]
#: Money-laundering typologies (``aml_rate`` > 0 or :meth:`Simulator.typology`), labelled 1
#: like the fraud patterns; the AML rules in ``models/aml`` are written to catch them.
AML_PATTERNS: tuple[str, ...] = (
    "structuring",
    "mule_fan_in",
    "pass_through",
    "fan_out",
    "dormant_reactivation",
    "round_amount",
    "high_risk_jurisdiction",
)
ALL_PATTERNS: tuple[str, ...] = PATTERNS + AML_PATTERNS
#: Jurisdictions the typologies send money to or receive it from (a subset of the example
#: list in ``models/aml/default_rules.toml``).
HIGH_RISK_COUNTRIES: tuple[str, ...] = ("IR", "KP", "MM", "SY")

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

#: Share of fraud *transactions* each pattern should contribute (scenario sizes differ).
FRAUD_MIX: dict[str, float] = {
    "card_testing": 0.35,
    "account_takeover": 0.20,
    "amount_spike": 0.20,
    "compromised_merchant": 0.25,
}

COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "CA", "NL", "ES", "IT", "MX", "BR")
_COUNTRY_WEIGHTS = (0.46, 0.12, 0.09, 0.07, 0.07, 0.05, 0.05, 0.04, 0.03, 0.02)
CURRENCY_OF: dict[str, str] = {
    "US": "USD",
    "GB": "GBP",
    "DE": "EUR",
    "FR": "EUR",
    "CA": "CAD",
    "NL": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "MX": "MXN",
    "BR": "BRL",
}
CATEGORIES: tuple[str, ...] = (
    "grocery",
    "restaurant",
    "fuel",
    "pharmacy",
    "clothing",
    "utilities",
    "transport",
    "entertainment",
    "online_retail",
    "electronics",
    "travel",
    "digital_goods",
    "gift_cards",
    "jewelry",
)
_CATEGORY_WEIGHTS = (
    0.16,
    0.14,
    0.08,
    0.06,
    0.08,
    0.06,
    0.07,
    0.06,
    0.10,
    0.05,
    0.04,
    0.04,
    0.03,
    0.03,
)
#: Where stolen card details get tested, and where stolen money gets spent.
_TESTING_CATEGORIES = ("digital_goods", "online_retail", "gift_cards", "entertainment")
_CASHOUT_CATEGORIES = ("electronics", "gift_cards", "jewelry", "travel", "digital_goods")

# Legit transaction types, in this order, with their probabilities.
_TYPES: tuple[str, ...] = ("PAYMENT", "CARD", "DEBIT", "TRANSFER", "CASH_OUT", "CASH_IN")
_TYPE_PROBS = (0.34, 0.31, 0.11, 0.10, 0.06, 0.08)
_PAYMENT, _CARD, _DEBIT, _TRANSFER, _CASH_OUT, _CASH_IN = range(6)

# Account activity by hour of day: a floor plus a bump around the account's own centre.
_ACTIVITY_FLOOR = 0.12
_HOUR_SLOTS = 96  # quarter hours
_SLOT_MS = DAY_MS // _HOUR_SLOTS

_BLOCK = 8192  # candidate arrivals drawn per numpy block
_BALANCE_GENERATION = 250_000  # accounts whose balance is remembered exactly, per generation
_N_MULES = 2_000
_N_ATMS = 5_000
_N_EMPLOYERS = 20_000

#: Relative chance that an account takeover happens at each UTC hour (mostly at night).
_NIGHT_WEIGHT: tuple[float, ...] = (
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    0.3,
    0.15,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.05,
    0.1,
    0.15,
    0.3,
    0.6,
)
_NIGHT_MEAN = sum(_NIGHT_WEIGHT) / len(_NIGHT_WEIGHT)

#: Share of transactions made by occasional accounts, and how much larger their pool is.
OCCASIONAL_SHARE = 0.3
_OCCASIONAL_POOL_FACTOR = 100

#: Mean transactions per typology scenario (round robin over AML_PATTERNS), for aml_rate.
_AML_TX_PER_SCENARIO = (15.0 + 9.0 + 3.6 + 7.5 + 3.0 + 1.4 + 1.4) / 7

_M64 = (1 << 64) - 1
_U64 = np.uint64


@dataclass(frozen=True, slots=True)
class SimulatedTx:
    """One simulated transaction: the JSON document plus its ground truth, kept apart."""

    tx: dict[str, Any]
    label: int  # 1 = fraud, 0 = legit
    pattern: str  # one of PATTERNS


# ---------------------------------------------------------------------------------------
# Procedural hashing: an account's profile is a pure function of (seed, index).


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


@dataclass(slots=True)
class _Profiles:
    """Profiles of a batch of accounts (arrays aligned with the account indices)."""

    idx: npt.NDArray[np.int64]
    typical: npt.NDArray[np.float64]  # typical amount, in cents
    center: npt.NDArray[np.float64]  # centre of the active hours (UTC hour, 0..24)
    spread: npt.NDArray[np.float64]  # width of the active hours (hours)
    country: npt.NDArray[np.int64]
    balance0: npt.NDArray[np.float64]  # balance in cents when first seen


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


@dataclass(slots=True)
class _Step:
    """A scheduled scenario transaction, turned into a document when its time comes."""

    account: int
    pattern: str
    kind: str
    label: int
    amount: int = 0  # cents; for drains the fraction of the balance is in ``fraction``
    fraction: float = 0.0
    counterparty: str = ""
    category: str | None = None
    tx_type: str = "CARD"
    channel: str = "online"
    country: str | None = None
    device: str | None = None
    follow: int = 0  # compromised-merchant visits: how many abuses this visit leads to
    backdate_ms: int = 0  # emitted with an event time this far before its turn (late event)
    extra: dict[str, Any] | None = None  # more fields for the document


class Simulator:
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

        # Balances: exact for recently active and for in-scenario accounts.
        self._cache_cap = max(_BALANCE_GENERATION, n_accounts)
        self._bal_new: dict[int, int] = {}
        self._bal_old: dict[int, int] = {}
        self._pinned: dict[int, int] = {}

    # -- profiles --------------------------------------------------------------------------

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
            "device_id": _device_id(int(self._h.bits(idx, _F_DEVICE)[0])),
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

    # -- expected sizes (used to hit the requested fraud rate) ----------------------------

    @staticmethod
    def _expected_fraud_tx(pattern: str) -> float:
        if pattern == "card_testing":
            return 12.5 + 0.4  # 5..20 probes, 40 % followed by a purchase
        if pattern == "account_takeover":
            return 0.5 + 1.4  # an optional probe, then 1 or 2 drains
        if pattern == "amount_spike":
            return 1.3
        return 10.0 * 2.0  # ~10 victims with 1..3 fraudulent transactions each

    # -- balances --------------------------------------------------------------------------

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

    # -- the stream ------------------------------------------------------------------------

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
        next_due = min(next_scenario, next_aml)
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
                            if step.follow:
                                self._push(self._card_abuse(step, when), heap, seq)
                            yield self._emit(step, when)
                        else:
                            break
                    next_due = min(next_scenario, next_aml, heap[0][0] if heap else math.inf)
                if end_ms is not None and ts >= end_ms:
                    return
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
                yield new_sim(tx, 0, "legit")

    # -- fraud scenarios -------------------------------------------------------------------

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

    def _push(
        self,
        steps: list[tuple[int, _Step]],
        heap: list[tuple[int, int, _Step]],
        seq: Iterator[int],
    ) -> None:
        for when, step in steps:
            self._pinned[step.account] = self._pinned.get(step.account, 0) + 1
            heapq.heappush(heap, (when, next(seq), step))

    def _foreign_country(self, home: str, p_abroad: float) -> str:
        rng = self.rng
        if rng.random() >= p_abroad:
            return home
        while True:
            c = COUNTRIES[int(rng.integers(0, len(COUNTRIES)))]
            if c != home:
                return c

    def _home(self, account: int) -> str:
        p = self._profiles(np.array([account], dtype=np.int64))
        return COUNTRIES[int(p.country[0])]

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

    # -- money-laundering typologies -------------------------------------------------------

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


def _account_id(index: int) -> str:
    return f"acc-{index:06d}"


def _device_id(bits: int) -> str:
    return f"dev-{bits & 0xFFFFFFFFFF:010x}"


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
