"""What the simulated world is made of: patterns, countries, categories, types, rates."""

from __future__ import annotations

PATTERNS: tuple[str, ...] = (
    "legit",
    "card_testing",
    "account_takeover",
    "inflated_amounts",
    "compromised_merchant",
)
FRAUD_PATTERNS: tuple[str, ...] = PATTERNS[1:]
#: Old pattern names and what replaced them (``amount_spike``, one or two purchases at
#: 8-30x the typical amount, became a fortnight of inflated amounts on a compromised card).
RENAMED_PATTERNS: dict[str, str] = {"amount_spike": "inflated_amounts"}
#: How long a compromised card's amounts are inflated (``inflated_amounts``).
INFLATED_DAYS = 14
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
    "inflated_amounts": 0.20,
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
#: Share of legit transactions that are card payments (PAYMENT or CARD).
_CARD_PAYMENT_SHARE = (_TYPE_PROBS[_PAYMENT] + _TYPE_PROBS[_CARD]) / sum(_TYPE_PROBS)

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
