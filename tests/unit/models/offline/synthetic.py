"""A synthetic replayed dataset: plain arrays in event-time order, fraud from two features."""

from __future__ import annotations

import numpy as np

from models.features import N_FEATURES
from models.offline.replay import DAY_MS
from models.offline.training import DEFAULT_START_MS, Dataset


def synthetic_dataset(seed: int, n_rows: int, n_days: int, n_accounts: int) -> Dataset:
    """Return rows whose fraud depends on features 0 and 1 plus noise, 5 % values missing."""
    rng = np.random.default_rng(seed)
    ts = np.sort(DEFAULT_START_MS + rng.integers(0, n_days * DAY_MS, n_rows)).astype(np.int64)
    x = rng.normal(size=(n_rows, N_FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    logit = 2.0 * np.nan_to_num(x[:, 0]) + 1.5 * np.nan_to_num(x[:, 1]) - 5.0
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    accounts = tuple(f"acct-{i}" for i in rng.integers(0, n_accounts, n_rows))
    return Dataset(
        features=x,
        labels=y,
        ts_ms=ts,
        patterns=tuple("fraud" if v else "legit" for v in y),
        data_hash=f"synthetic-{seed}",
        accounts=accounts,
        tx_ids=tuple(f"tx-{i}" for i in range(n_rows)),
    )
