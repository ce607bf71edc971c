"""Transaction simulator with labelled fraud patterns, for training, demos and load tests.

One module per thing it simulates, each a layer of :class:`Simulator`:

* ``catalog``: what the world is made of (patterns, countries, categories, types, rates);
* ``hashing``: procedural per-account randomness (splitmix64), so profiles cost no memory;
* ``labelled``: a transaction with its ground truth, and the steps scenarios schedule;
* ``population``: account profiles, activity by hour, who transacts, balances;
* ``fraud``: the fraud scenarios (card testing, takeover draining the balance, inflated
  amounts on a compromised card, compromised merchant);
* ``aml``: the money-laundering typologies;
* ``stream``: legit traffic with the scenarios merged in, :func:`simulate_history`.

Event times are epoch milliseconds, so every hour is a UTC hour, the same clock the
``hour_of_day`` feature reads for epoch-ms input.
"""

from models.simulator.catalog import (
    ALL_PATTERNS,
    AML_PATTERNS,
    CATEGORIES,
    COUNTRIES,
    CURRENCY_OF,
    DAY_MS,
    FRAUD_MIX,
    FRAUD_PATTERNS,
    HIGH_RISK_COUNTRIES,
    HOUR_MS,
    INFLATED_DAYS,
    MINUTE_MS,
    OCCASIONAL_SHARE,
    PATTERNS,
    RENAMED_PATTERNS,
)
from models.simulator.labelled import SimulatedTx
from models.simulator.stream import Simulator, simulate_history

__all__ = [
    "ALL_PATTERNS",
    "AML_PATTERNS",
    "CATEGORIES",
    "COUNTRIES",
    "CURRENCY_OF",
    "DAY_MS",
    "FRAUD_MIX",
    "FRAUD_PATTERNS",
    "HIGH_RISK_COUNTRIES",
    "HOUR_MS",
    "INFLATED_DAYS",
    "MINUTE_MS",
    "OCCASIONAL_SHARE",
    "PATTERNS",
    "RENAMED_PATTERNS",
    "SimulatedTx",
    "Simulator",
    "simulate_history",
]
