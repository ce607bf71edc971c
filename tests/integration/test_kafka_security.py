"""A worker and the simulator on a real Apache Kafka through a SASL_SSL listener.

One single-node KRaft broker for the module, with a SASL_SSL listener beside its plain-text
one: a certificate for 127.0.0.1 and localhost signed by a CA the test makes, SCRAM users
created when the storage is formatted and a PLAIN user in the listener's JAAS line. A worker
scores what the simulator sends through that listener only; a wrong password, a CA that did
not sign the broker's certificate, or plain text to the TLS port stop the worker with one
line naming the problem (exit 78, not the broker timeout's 69) and never show the secret.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from app.internals import aiokafka_client
from app.kafka.embedded_broker import free_port
from app.kafka.local_kafka import LocalKafka
from app.kafka.security import KafkaSecurity, diagnose_connection, security_from_settings
from app.settings import load_settings
from tests.integration.aml_support import wait_for_log
from tests.integration.worker import WorkerProcess, isolated_env, run_faust
from tests.tls_support import Pki, make_pki

#: Guards the test run only: a process that hangs fails the test instead of blocking it.
GUARD_S = 120.0
#: Unique, so that finding it in any output means it leaked.
PASSWORD = f"vigil-secret-{uuid.uuid4().hex}"
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class SecuredKafka:
    """The broker, its SASL_SSL port and the certificates."""

    kafka: LocalKafka
    port: int
    pki: Pki

    @property
    def url(self) -> str:
        """Return the Faust URL of the SASL_SSL listener (the plain-text one is not used)."""
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        """Return the SASL_SSL listener's ``host:port``."""
        return f"127.0.0.1:{self.port}"

    @property
    def flavor(self) -> str:
        """Return the worker's ``VIGIL_BROKER_FLAVOR`` (Apache Kafka: no tansu workaround)."""
        return "kafka"

    def failed_logins(self) -> int:
        """Count the connections the broker refused (its ``Failed authentication`` lines)."""
        log = self.kafka.node_dir(1) / "server.log"
        return log.read_text(errors="replace").count("Failed authentication")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    """Start one Kafka node with a SASL_SSL listener (SCRAM-SHA-256/512 and PLAIN)."""
    work = tmp_path_factory.mktemp("secured-kafka")
    pki = make_pki(work / "pki")
    port = free_port()
    prefix = "listener.name.sasl_ssl."
    properties = {
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
        prefix + "ssl.keystore.type": "PEM",
        prefix + "ssl.keystore.location": str(pki.broker_keystore),
        prefix + "ssl.truststore.type": "PEM",
        prefix + "ssl.truststore.location": str(pki.ca),
        prefix + "scram-sha-256.sasl.jaas.config": SCRAM_JAAS,
        prefix + "scram-sha-512.sasl.jaas.config": SCRAM_JAAS,
        prefix + "plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_vigil="{PASSWORD}";'
        ),
    }
    users = [
        arg
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
        for arg in ("--add-scram", f"{mechanism}=[name=vigil,password={PASSWORD}]")
    ]
    kafka = LocalKafka(
        work / "kafka", listeners={"SASL_SSL": port}, properties=properties, format_args=users
    )
    with kafka:
        yield SecuredKafka(kafka, port, pki)


def _env(secured: SecuredKafka, model: Path, data_dir: Path, **security: str) -> dict[str, str]:
    """Return an isolated worker environment on the SASL_SSL listener."""
    env = isolated_env(cast(Any, secured), model, data_dir)
    env.update(
        {
            "VIGIL_BROKER_FLAVOR": "kafka",
            "VIGIL_SECURITY_PROTOCOL": "SASL_SSL",
            "VIGIL_SSL_CA_FILE": str(secured.pki.ca),
            "VIGIL_SASL_MECHANISM": "SCRAM-SHA-256",
            "VIGIL_SASL_USERNAME": "vigil",
            "VIGIL_SASL_PASSWORD": PASSWORD,
            "VIGIL_BROKER_CONNECT_TIMEOUT_S": "60",
            **security,
        }
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    return run_faust(args, env, GUARD_S)


async def _create_topic(bootstrap: str, topic: str, security: KafkaSecurity) -> None:
    """Create the input topic as an operator would (the broker does not auto-create)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.client_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()


async def _read_scored(bootstrap: str, topic: str, security: KafkaSecurity, n: int) -> set[str]:
    """Read ``topic`` through the secured listener until ``n`` distinct tx ids are seen."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **security.client_kwargs()
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        while not consumer.partitions_for_topic(topic):  # the worker created it: ask again
            await aiokafka_client.refresh_metadata(consumer)
            await asyncio.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        for _ in range(600):  # 600 polls of up to 0.1 s: a guard, not a measurement
            batch = await consumer.getmany(timeout_ms=100)
            seen.update(orjson.loads(m.value)["tx_id"] for ms in batch.values() for m in ms)
            if len(seen) >= n:
                break
        return seen
    finally:
        await consumer.stop()


def test_worker_scores_what_the_simulator_sends_through_sasl_ssl(
    secured: SecuredKafka, trained_model: Path, tmp_path: Path
) -> None:
    password_file = tmp_path / "sasl-password"
    password_file.write_text(PASSWORD + "\n")
    # The worker reads its password from a file, the simulator from the environment.
    worker_env = _env(
        secured,
        trained_model,
        tmp_path / "data",
        VIGIL_SASL_PASSWORD="",
        VIGIL_SASL_PASSWORD_FILE=str(password_file),
    )
    sim_env = {**worker_env, "VIGIL_SASL_PASSWORD": PASSWORD, "VIGIL_SASL_PASSWORD_FILE": ""}
    security = security_from_settings(load_settings(sim_env))
    inputs = worker_env["VIGIL_TOPIC_TRANSACTIONS"]
    asyncio.run(_create_topic(secured.bootstrap, inputs, security))
    worker = WorkerProcess(worker_env, tmp_path / "worker.log").start(timeout_s=GUARD_S)
    try:
        code, out = _run(["simulate", "--rate", "50", "--duration", "3", "--seed", "5"], sim_env)
        assert code == 0, out[-4000:]
        found = re.search(r"sent (\d+) transactions", out)
        assert found is not None, out[-4000:]
        sent = int(found.group(1))
        assert sent > 50, out

        topic = worker_env["VIGIL_TOPIC_SCORED"]
        scored = asyncio.run(_read_scored(secured.bootstrap, topic, security, sent))
        assert len(scored) == sent

        # The web view's alert feed reads every partition through the same listener.
        wait_for_log(worker, "alert feed live", timeout_s=60)
        with urllib.request.urlopen(f"{worker.web_url}/metrics", timeout=10) as page:
            metrics = page.read().decode()
        assert "vigil_" in metrics
        assert PASSWORD not in metrics
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "alert feed restarts" not in log
    assert PASSWORD not in log and PASSWORD not in out


@pytest.mark.parametrize(
    ("security", "words"),
    [
        (
            {"VIGIL_SASL_PASSWORD": "wrong-" + PASSWORD[::-1]},
            "refused the SASL login (SASL_SSL, SCRAM-SHA-256 as 'vigil')",
        ),
        ({"VIGIL_SSL_CA_FILE": "__stranger__"}, "is not trusted"),
        (
            {
                "VIGIL_SECURITY_PROTOCOL": "PLAINTEXT",
                "VIGIL_SSL_CA_FILE": "",
                "VIGIL_SASL_USERNAME": "",
                "VIGIL_SASL_PASSWORD": "",
            },
            "is a TLS listener but VIGIL_SECURITY_PROTOCOL=PLAINTEXT",
        ),
    ],
    ids=["wrong-password", "unknown-ca", "plaintext-to-tls"],
)
def test_worker_refused_by_the_secured_listener_exits_78_with_one_line(
    secured: SecuredKafka,
    trained_model: Path,
    tmp_path: Path,
    security: dict[str, str],
    words: str,
) -> None:
    overrides = {
        k: str(secured.pki.stranger_ca) if v == "__stranger__" else v for k, v in security.items()
    }
    env = _env(secured, trained_model, tmp_path / "data", **overrides)
    refused_before = secured.failed_logins()
    code, out = _run(["worker", "-l", "info"], env)
    # 78, not 69: the worker stopped on the refusal, not after VIGIL_BROKER_CONNECT_TIMEOUT_S.
    assert code == 78, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    lines = [line for line in out.splitlines() if "[CRITICAL]" in line]
    assert len(lines) == 1, out[-4000:]
    assert "cannot use the Kafka broker: " in lines[0]
    assert f"broker at {secured.bootstrap}" in lines[0] and words in lines[0]
    assert "[^Worker]: Ready" not in out
    for secret in {PASSWORD, security.get("VIGIL_SASL_PASSWORD", "")} - {""}:
        assert secret not in out
    if "VIGIL_SSL_CA_FILE" not in security:  # the broker saw the bad login or handshake
        assert secured.failed_logins() > refused_before


def test_simulator_refused_by_the_secured_listener_prints_one_line(
    secured: SecuredKafka, trained_model: Path, tmp_path: Path
) -> None:
    wrong = "wrong-" + PASSWORD[::-1]
    env = _env(secured, trained_model, tmp_path / "data", VIGIL_SASL_PASSWORD=wrong)
    refused_before = secured.failed_logins()
    code, out = _run(["simulate", "--duration", "1"], env)
    assert code == 1, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    lines = [line for line in out.splitlines() if "vigil: simulate:" in line]
    assert len(lines) == 1, out[-4000:]
    assert "refused the SASL login" in lines[0]
    assert wrong not in out and PASSWORD not in out
    assert secured.failed_logins() > refused_before


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_other_sasl_mechanisms_log_in_and_list_topics(
    secured: SecuredKafka, mechanism: str
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    env = {
        "VIGIL_SECURITY_PROTOCOL": "SASL_SSL",
        "VIGIL_SSL_CA_FILE": str(secured.pki.ca),
        "VIGIL_SASL_MECHANISM": mechanism,
        "VIGIL_SASL_USERNAME": "vigil",
        "VIGIL_SASL_PASSWORD": PASSWORD,
    }
    security = security_from_settings(load_settings(env))

    async def check() -> tuple[Any, list[str]]:
        problem = await diagnose_connection(secured.bootstrap, security, 30.0)
        admin = AIOKafkaAdminClient(bootstrap_servers=secured.bootstrap, **security.client_kwargs())
        await admin.start()
        try:
            return problem, await admin.list_topics()
        finally:
            await admin.close()

    problem, topics = asyncio.run(check())
    assert problem is None
    assert isinstance(topics, list)
    # The same user with a wrong password is refused under this mechanism too.
    wrong = security_from_settings(load_settings({**env, "VIGIL_SASL_PASSWORD": "nope"}))
    refused = asyncio.run(diagnose_connection(secured.bootstrap, wrong, 30.0))
    assert refused is not None and refused.final
    assert "refused the SASL login" in refused.message
