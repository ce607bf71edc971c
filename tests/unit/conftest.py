"""Fixtures shared by unit tests of the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train a small real model on simulated data, once per session (seconds)."""
    from models.offline.training import train_default

    path = tmp_path_factory.mktemp("model") / "vigil-small.json"
    train_default(path, seed=11, n_accounts=120, days=4, nthread=1)
    return path
