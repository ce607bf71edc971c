"""The default model (``faust -A app train`` without ``--data``) catches the obvious drain.

Issue 15's case as a new user would try it: an account with twenty days of small card
payments suddenly transfers its whole balance (9,800 of 9,800) to a payee it never paid.
The real default model is trained here (the same ``train_default`` the command runs, default
sizes and seed) and the account is replayed through the stream's own feature code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.artifact import ModelArtifact
from models.offline.replay import Replayer
from models.scorer import Scorer
from models.tiers import tier_for_score
from models.transaction import transaction_from_dict

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
START_MS = 1_767_225_600_000  # 2026-01-01 UTC


@pytest.fixture(scope="module")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    from models.offline.training import train_default

    return train_default(tmp_path_factory.mktemp("default") / "vigil-default.json")


def drained_account(hour: int, device: str | None) -> list[dict[str, Any]]:
    """Twenty days of three small card payments a day, then the whole balance to a new payee."""
    rng = np.random.default_rng(5)
    amounts = [round(float(rng.uniform(5, 60)), 2) for _ in range(60)]
    balance = 9_800.0 + sum(amounts)
    docs: list[dict[str, Any]] = []
    for i, amount in enumerate(amounts):
        day, k = divmod(i, 3)
        docs.append(
            {
                "tx_id": f"pay-{i}",
                "ts": START_MS + day * DAY_MS + (10 + 3 * k) * HOUR_MS,
                "account_id": "acc-drained",
                "amount": amount,
                "currency": "USD",
                "type": "PAYMENT",
                "channel": "card",
                "counterparty_id": f"merchant-{i % 5}",
                "merchant_category": "grocery",
                "country": "US",
                "balance_before": round(balance, 2),
                "balance_after": round(balance - amount, 2),
            }
        )
        balance -= amount
    drain: dict[str, Any] = {
        "tx_id": "drain",
        "ts": START_MS + 20 * DAY_MS + hour * HOUR_MS,
        "account_id": "acc-drained",
        "amount": 9_800.0,
        "currency": "USD",
        "type": "TRANSFER",
        "channel": "online",
        "counterparty_id": "payee-never-paid",
        "country": "US",
        "balance_before": 9_800.0,
        "balance_after": 0.0,
    }
    if device is not None:
        drain["device_id"] = device
    return [*docs, drain]


@pytest.mark.parametrize("device", [None, "dev-never-seen"], ids=["no-device", "new-device"])
@pytest.mark.parametrize("hour", [3, 14], ids=["night", "afternoon"])
def test_a_whole_balance_drain_to_a_new_payee_is_high(
    default_model: ModelArtifact, hour: int, device: str | None
) -> None:
    replay = Replayer()
    for doc in drained_account(hour, device):
        step = replay.step(transaction_from_dict(doc))
    score = float(Scorer(default_model).score(np.array([step.features], dtype=np.float32))[0])
    assert tier_for_score(score, default_model.thresholds) == "HIGH", score


def test_the_same_account_paying_a_known_merchant_is_not_alerted(
    default_model: ModelArtifact,
) -> None:
    # The check above must not pass because the model alerts on everything this account does.
    docs = drained_account(14, None)[:-1]
    replay = Replayer()
    for doc in docs:
        step = replay.step(transaction_from_dict(doc))
    score = float(Scorer(default_model).score(np.array([step.features], dtype=np.float32))[0])
    assert tier_for_score(score, default_model.thresholds) == "MINIMAL", score
