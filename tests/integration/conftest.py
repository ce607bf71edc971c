"""Session fixtures: one broker of each kind and one trained model for all integration tests.

Every test that takes ``broker`` runs once per broker, ``[tansu]`` (the embedded broker) and
``[kafka]`` (Apache Kafka, one KRaft node from app.kafka.local_kafka; the jars are fetched on first
use). ``@pytest.mark.brokers("tansu")`` keeps a test on the listed brokers only (say why).
Each broker is started once, when its first test runs; ``-m "not kafka"`` runs tansu only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.kafka.embedded_broker import EmbeddedBroker
from tests.integration.worker import Broker, WorkerProcess, isolated_env

#: Every broker flavour the suite runs on (also the test id and a marker of each test).
BROKERS = ("tansu", "kafka")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that takes ``broker`` on every broker its ``brokers`` marker allows."""
    if "broker" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("brokers")
    names = marker.args if marker is not None else BROKERS
    unknown = set(names) - set(BROKERS)
    if unknown:
        raise pytest.UsageError(f"unknown broker(s) {sorted(unknown)}; known: {BROKERS}")
    params = [pytest.param(name, id=name, marks=getattr(pytest.mark, name)) for name in names]
    metafunc.parametrize("broker", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """Start the broker named by the test's parameter on free loopback ports, once a session."""
    if request.param == "kafka":
        from app.kafka.local_kafka import LocalKafka
        from app.settings import load_settings

        jars = load_settings().kafka_jars_dir
        with LocalKafka(tmp_path_factory.mktemp("kafka"), nodes=1, jars_dir=jars) as kafka:
            yield kafka
        return
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train a real (small) XGBoost artifact on simulated data."""
    from models.offline.training import train_default

    path = tmp_path_factory.mktemp("model") / "vigil-test.json"
    train_default(path, seed=11, n_accounts=1500, days=14)
    return path


@pytest.fixture
def worker_env(broker: Broker, trained_model: Path, tmp_path: Path) -> dict[str, str]:
    """Return an isolated worker environment (own app id, topics and data dir)."""
    return isolated_env(broker, trained_model, tmp_path / "worker-data")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[object]:
    """Start workers on demand; every one still running is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], name: str = "worker") -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"{name}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
