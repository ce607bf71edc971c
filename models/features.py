"""Per-account velocity features: one pure function shared by the agent and training.

``update_account(state, tx) -> (features, new_state)`` is the only implementation. The
streaming agent calls it with the state from the RocksDB table; training and backtests call
it while replaying a file in event-time order.

Windows are by event time, on time buckets so the state stays bounded:

* 1 h  = the transaction's 5-minute bucket and the 11 before it,
* 24 h = its hour bucket and the 23 before it,
* 7 d / 30 d = its UTC day bucket and the 6 / 29 before it.

Every velocity feature describes the account's history *before* this transaction, so the
first transaction of an account has zero counts. A replayed transaction (same ``tx_id`` among
the last :data:`SEEN_TX` applied to the account) is scored again but not counted again; its
features then describe the state that already includes it (the pre-state is gone), which is
the price of a bounded state.

Hour of day, night and weekend are in the event's own time zone when its ISO timestamp names
one, otherwise UTC (epoch milliseconds carry no zone).

A late (out-of-order) event is counted in its own buckets; its windows end at its own time
except ``distinct_cp_24h``, which also counts counterparties first seen after it.

The account-relative features (appended in format 5) compare a transaction with the
account's own history, where fraud shows as a break from habit rather than a large number:

* ``amount_to_avg_24h`` / ``_7d`` / ``_30d``: the amount over the window's mean amount
  (``sum / count`` of the same windows; NaN when the window is empty or its mean is 0);
* ``amount_to_max_30d``: the amount over the largest single amount of the 30-day window (a
  running maximum per day bucket, 30 of them);
* ``days_since_first_cp``: days since the account first paid this counterparty (NaN with no
  counterparty, 0 for a new one); a counterparty the LRU forgot is new again;
* ``count_1h_to_usual``: ``count_1h`` over the account's usual hourly count, ``count_30d``
  spread over the hours it has been active in the window (its age, at least 1 h, at most
  30 days); NaN without a transaction in 30 days;
* ``hour_unusual``: the mean of ``1 - cos`` of the angle between this transaction's time of
  day and each earlier one's (0 = the account's usual time, 2 = twelve hours away from all
  of them, 1 = no habit), from two running sums: the periodic feature of Bahnsen et al.
  (2016) without its von Mises fit;
* ``amount_to_type_mean``: the amount over the account's mean amount for this ``type`` (NaN
  for the first of its type).

A format-3 or format-4 state reads with those histories empty; a counterparty it knew counts
as first seen when it was last seen (the only sighting the state can prove).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.counterparty_risk import RISK_FEATURE_NAMES, CounterpartyRisk, risk_features
from models.redelivery import InputPosition, advance, already_applied
from models.transaction import Transaction
from models.windows import add, largest, sums

STATE_FORMAT = 5
#: Format 3 had no input offsets, format 4 no account-relative histories; such a state reads
#: with them empty (tx ids guard a format-3 state meanwhile).
PREVIOUS_STATE_FORMATS = (3, 4)

BUCKET_5M_MS = 300_000
BUCKET_1H_MS = 3_600_000
BUCKET_1D_MS = 86_400_000
SLOTS_5M = 12  # 1 h
SLOTS_1H = 24  # 24 h
SLOTS_1D = 30  # 30 d (7 d is the last 7 of these)
#: Bounded memory of counterparties (LRU by last seen) and of applied transaction ids.
MAX_COUNTERPARTIES = 64
MAX_DEVICES = 8
SEEN_TX = 32
#: The z-score's deviation never goes below this share of the mean, so an account whose past
#: amounts were all equal still shows how far a new amount is from them.
STD_FLOOR_OF_MEAN = 0.05
NIGHT_HOURS = range(0, 6)
_RADIANS_PER_S = 2.0 * math.pi / 86_400
#: The clock sums are stored to 3 decimals: ``hour_unusual`` moves by under 0.001 (of 0..2),
#: and a full-precision float would be most of a new account's state (~40 of ~250 bytes).
CLOCK_DECIMALS = 3
#: Ratios (to the mean, to the balance, the drain) are capped at this size: a balance of
#: 1e-300 would make them infinite, and the model reads features as float32.
RATIO_CAP = 1e9

TYPE_CODES = {"PAYMENT": 0, "TRANSFER": 1, "CASH_OUT": 2, "CASH_IN": 3, "DEBIT": 4, "CARD": 5}

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "log_amount",
    "count_1h",
    "sum_1h",
    "count_24h",
    "sum_24h",
    "count_7d",
    "sum_7d",
    "count_30d",
    "sum_30d",
    "account_tx_count",
    "account_age_days",
    "mean_amount",
    "std_amount",
    "amount_zscore",
    "amount_to_mean",
    "secs_since_prev",
    "distinct_cp_24h",
    "new_counterparty",
    "new_device",
    "foreign_country",
    "hour_of_day",
    "is_night",
    "is_weekend",
    "balance_drain_ratio",
    "amount_to_balance",
    "type_code",
    *RISK_FEATURE_NAMES,
    "amount_to_avg_24h",
    "amount_to_avg_7d",
    "amount_to_avg_30d",
    "amount_to_max_30d",
    "days_since_first_cp",
    "count_1h_to_usual",
    "hour_unusual",
    "amount_to_type_mean",
)
N_FEATURES = len(FEATURE_NAMES)
NAN = float("nan")


@dataclass(slots=True)
class AccountState:
    """Compact, bounded velocity state of one account.

    Buckets are ``[index, count, amount_sum]`` triples in ascending index order;
    counterparties are ``[crc32, last_seen_ms, known_ms]`` triples, where ``known_ms`` is how
    long before its last sighting it was first seen (0 for most: a payee seen once costs two
    bytes, not a second timestamp); ``seen`` holds 64-bit hashes of the most recent
    transaction ids.
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    first_ts_ms: int = -1
    last_ts_ms: int = -1
    b5m: list[list[float]] = field(default_factory=list)
    b1h: list[list[float]] = field(default_factory=list)
    b1d: list[list[float]] = field(default_factory=list)
    cps: list[list[int]] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    #: crc32 of the most recent distinct devices, oldest first.
    devices: list[int] = field(default_factory=list)
    #: crc32 of the country of the account's first transaction that named one (-1: none yet).
    home_country: int = -1
    #: State of the AML rules (owned and bounded by ``models.aml``), stored with the rest so
    #: one table write per transaction still holds everything about the account.
    aml: list[Any] = field(default_factory=list)
    #: Offset of the last transaction applied, per input topic (``models.redelivery``).
    offsets: dict[str, int] = field(default_factory=dict)
    #: ``[day_index, largest_amount]`` per UTC day bucket, the 30-day window's.
    dmax: list[list[float]] = field(default_factory=list)
    #: Time of day of the account's transactions: ``[n, sum_cos, sum_sin]`` (empty: none),
    #: the sums rounded to :data:`CLOCK_DECIMALS`.
    clock: list[float] = field(default_factory=list)
    #: Running mean amount per type: ``[type_code, n, mean]``, at most one per type code.
    types: list[list[float]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """Serialize to the table's value format (compact JSON array)."""
        return orjson.dumps(
            [
                STATE_FORMAT,
                self.n,
                self.mean,
                self.m2,
                self.first_ts_ms,
                self.last_ts_ms,
                self.b5m,
                self.b1h,
                self.b1d,
                self.cps,
                self.seen,
                self.devices,
                self.home_country,
                self.aml,
                self.offsets,
                self.dmax,
                self.clock,
                self.types,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountState:
        """Deserialize a table value written by :meth:`to_bytes`."""
        v = orjson.loads(data)
        if v[0] in PREVIOUS_STATE_FORMATS:
            state = cls(*v[1:])
            for pair in state.cps:
                pair.append(0)  # first seen when last seen: the only sighting it can prove
            return state
        if v[0] != STATE_FORMAT:
            raise ValueError(f"account state format {v[0]} is not {STATE_FORMAT}")
        return cls(*v[1:])

    def window(self, ts_ms: int) -> dict[str, float]:
        """Return counts and sums of the four windows ending at ``ts_ms`` (for views, tests)."""
        c1h, s1h = sums(self.b5m, ts_ms // BUCKET_5M_MS, SLOTS_5M, 2)
        c24, s24 = sums(self.b1h, ts_ms // BUCKET_1H_MS, SLOTS_1H, 2)
        c7, s7 = sums(self.b1d, ts_ms // BUCKET_1D_MS, 7, 2)
        c30, s30 = sums(self.b1d, ts_ms // BUCKET_1D_MS, SLOTS_1D, 2)
        return {
            "count_1h": c1h,
            "sum_1h": s1h,
            "count_24h": c24,
            "sum_24h": s24,
            "count_7d": c7,
            "sum_7d": s7,
            "count_30d": c30,
            "sum_30d": s30,
        }


def _ratio(amount: float, reference: float) -> float:
    """Return ``amount / reference`` capped, or NaN when the reference is not positive."""
    return _capped(amount / reference) if reference > 0 else NAN


def _capped(ratio: float) -> float:
    """Return ``ratio`` within ``-RATIO_CAP..RATIO_CAP`` (NaN stays NaN: missing)."""
    if ratio > RATIO_CAP:
        return RATIO_CAP
    if ratio < -RATIO_CAP:
        return -RATIO_CAP
    return ratio


def is_replay(state: AccountState, tx: Transaction, pos: InputPosition | None = None) -> bool:
    """Tell whether ``tx`` (read at ``pos``, if from a topic) was applied to ``state`` already."""
    return already_applied(state.offsets, state.seen, tx.id_hash, pos)


def update_account(
    state: AccountState | None,
    tx: Transaction,
    cp_risk: CounterpartyRisk | None = None,
    pos: InputPosition | None = None,
) -> tuple[list[float], AccountState]:
    """Compute the features of ``tx`` and return them with the state that includes it.

    ``cp_risk`` is the risk state of the transaction's counterparty (labels that arrived so
    far, see :mod:`models.counterparty_risk`); it is read, never changed.

    ``pos`` is where the stream read ``tx`` (offline replays pass none). The input state is
    updated in place and returned. A transaction the state has applied already (its input
    offset at or below the account's mark for that topic, or its ``tx_id`` among the last
    :data:`SEEN_TX`) is scored but not counted again; :mod:`models.redelivery` says why both,
    and how a mark left by a recreated topic (offsets restart) is told apart.
    """
    st = state if state is not None else AccountState()
    ts = tx.ts_ms
    amount = tx.amount
    d5, dh, dd = ts // BUCKET_5M_MS, ts // BUCKET_1H_MS, ts // BUCKET_1D_MS
    c1h, s1h = sums(st.b5m, d5, SLOTS_5M, 2)
    c24, s24 = sums(st.b1h, dh, SLOTS_1H, 2)
    c7, s7 = sums(st.b1d, dd, 7, 2)
    c30, s30 = sums(st.b1d, dd, SLOTS_1D, 2)

    n = st.n
    mean = st.mean
    std = math.sqrt(st.m2 / (n - 1)) if n >= 2 else NAN
    zscore = (amount - mean) / max(std, STD_FLOOR_OF_MEAN * mean, 0.01) if n >= 2 else NAN
    to_mean = _capped(amount / mean) if n >= 1 and mean > 0 else NAN
    since_prev = max(0.0, (ts - st.last_ts_ms) / 1000.0) if st.last_ts_ms >= 0 else NAN
    age_days = max(0.0, (ts - st.first_ts_ms) / BUCKET_1D_MS) if st.first_ts_ms >= 0 else 0.0

    since_24h = ts - BUCKET_1D_MS
    distinct_cp = 0.0
    for entry in st.cps:
        if entry[1] > since_24h:
            distinct_cp += 1
    cp_key = -1
    cp_entry: list[int] | None = None  # the counterparty's entry, found once for both uses
    if tx.counterparty_id is None:
        new_cp = NAN
        cp_days = NAN
    else:
        cp_key = zlib.crc32(tx.counterparty_id.encode())
        new_cp = 1.0
        cp_days = 0.0
        for entry in st.cps:
            if entry[0] == cp_key:
                cp_entry = entry
                new_cp = 0.0
                cp_days = max(0.0, (ts - entry[1] + entry[2]) / BUCKET_1D_MS)
                break

    device_key = -1
    if tx.device_id is None:
        new_device = NAN
    else:
        device_key = zlib.crc32(tx.device_id.encode())
        new_device = 0.0 if device_key in st.devices else 1.0
    if tx.country is None or st.home_country < 0:
        foreign = NAN
    else:
        foreign = 0.0 if zlib.crc32(tx.country.encode()) == st.home_country else 1.0

    local_s = ts // 1000 + tx.tz_offset_s
    hour = (local_s % 86_400) // 3_600
    weekday = (local_s // 86_400 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    before = tx.balance_before
    after = tx.balance_after
    if before is not None and before > 0:
        drain = _capped((before - after) / before) if after is not None else NAN
        to_balance = _capped(amount / before)
    else:
        drain = NAN
        to_balance = NAN
    type_code = TYPE_CODES.get(tx.type, -1) if tx.type is not None else -1

    largest_30d = largest(st.dmax, dd, SLOTS_1D)
    to_max = _ratio(amount, largest_30d if largest_30d is not None else 0.0)
    hours_active = min(max(age_days * 24.0, 1.0), SLOTS_1D * 24.0)
    to_usual = c1h * hours_active / c30 if c30 > 0 else NAN
    angle = (local_s % 86_400) * _RADIANS_PER_S
    cos_t, sin_t = math.cos(angle), math.sin(angle)
    clock = st.clock
    unusual = 1.0 - (cos_t * clock[1] + sin_t * clock[2]) / clock[0] if clock else NAN
    type_entry: list[float] | None = None
    if type_code >= 0:
        for entry_t in st.types:
            if entry_t[0] == type_code:
                type_entry = entry_t
                break
    to_type_mean = _ratio(amount, type_entry[2]) if type_entry is not None else NAN

    features = [
        amount,
        math.log1p(amount),
        c1h,
        s1h,
        c24,
        s24,
        c7,
        s7,
        c30,
        s30,
        float(n),
        age_days,
        mean if n else NAN,
        std,
        zscore,
        to_mean,
        since_prev,
        distinct_cp,
        new_cp,
        new_device,
        foreign,
        float(hour),
        1.0 if hour in NIGHT_HOURS else 0.0,
        1.0 if weekday >= 5 else 0.0,
        drain,
        to_balance,
        float(type_code) if type_code >= 0 else NAN,
        *risk_features(cp_risk if tx.counterparty_id is not None else None, ts),
        _ratio(amount, s24 / c24) if c24 > 0 else NAN,
        _ratio(amount, s7 / c7) if c7 > 0 else NAN,
        _ratio(amount, s30 / c30) if c30 > 0 else NAN,
        to_max,
        cp_days,
        to_usual,
        unusual,
        to_type_mean,
    ]

    h = tx.id_hash
    if already_applied(st.offsets, st.seen, h, pos):
        return features, st

    # Apply: Welford running mean/variance, buckets, counterparties, replay guards.
    n += 1
    delta = amount - mean
    mean += delta / n
    st.m2 += delta * (amount - mean)
    st.n = n
    st.mean = mean
    if st.first_ts_ms < 0 or ts < st.first_ts_ms:
        st.first_ts_ms = ts
    if ts > st.last_ts_ms:
        st.last_ts_ms = ts
    add(st.b5m, d5, (1, amount), SLOTS_5M)
    add(st.b1h, dh, (1, amount), SLOTS_1H)
    add(st.b1d, dd, (1, amount), SLOTS_1D)
    add(st.dmax, dd, (amount,), SLOTS_1D, peak=True)
    if clock:
        clock[0] += 1
        clock[1] = round(clock[1] + cos_t, CLOCK_DECIMALS)
        clock[2] = round(clock[2] + sin_t, CLOCK_DECIMALS)
    else:
        st.clock = [1, round(cos_t, CLOCK_DECIMALS), round(sin_t, CLOCK_DECIMALS)]
    if type_code >= 0:
        if type_entry is None:
            st.types.append([type_code, 1, amount])
        else:
            type_entry[1] += 1
            type_entry[2] += (amount - type_entry[2]) / type_entry[1]
    if cp_key >= 0:
        if cp_entry is not None:
            last = cp_entry[1]
            first = min(last - cp_entry[2], ts)
            cp_entry[1] = max(last, ts)
            cp_entry[2] = cp_entry[1] - first
        else:
            st.cps.append([cp_key, ts, 0])
            if len(st.cps) > MAX_COUNTERPARTIES:
                oldest = min(range(len(st.cps)), key=lambda i: st.cps[i][1])
                del st.cps[oldest]
    if device_key >= 0:
        if new_device == 0.0:
            st.devices.remove(device_key)
        st.devices.append(device_key)
        if len(st.devices) > MAX_DEVICES:
            del st.devices[0]
    if st.home_country < 0 and tx.country is not None:
        st.home_country = zlib.crc32(tx.country.encode())
    st.seen.append(h)
    if len(st.seen) > SEEN_TX:
        del st.seen[0]
    if pos is not None:
        advance(st.offsets, pos)
    return features, st


def features_dict(values: list[float]) -> dict[str, float | None]:
    """Name a feature vector; NaN (missing) becomes ``None`` so it serializes as JSON."""
    return {name: (None if v != v else v) for name, v in zip(FEATURE_NAMES, values, strict=True)}
