"""``faust -A app broker [--kafka]`` and ``faust -A app demo --broker kafka`` on real brokers.

The broker command's address carries real traffic and nothing outlives the command after
SIGTERM; a missing Java or Maven, or an unreachable Maven Central, is one line; the demo
on Apache Kafka scores transactions with a worker that knows it talks to Kafka.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from app.kafka.local_kafka import KAFKA_VERSION
from tests.integration.kafka_io import consume, produce
from tests.integration.test_demo import (  # noqa: F401  (fixtures)
    FAUST,
    REPO,
    Spawned,
    _alive,
    _children,
    _wait_for,
    demo_env,
    spawned,
)

pytestmark = pytest.mark.integration


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _broker_processes(pid: int) -> dict[int, str]:
    """Return ``pid``'s descendants that are brokers: a Kafka JVM or tansu."""
    found = {}
    for kid in _children(pid):
        args = _cmdline(kid)
        if b"kafka.Kafka" in args:
            found[kid] = "kafka"
        elif args and b"tansu" in args[0]:
            found[kid] = "tansu"
    return found


def _env_without_vigil(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(extra)
    return env


@pytest.mark.parametrize("flavor", ["tansu", "kafka"])
def test_broker_command_serves_its_address_and_leaves_nothing_after_sigterm(
    flavor: str,
    tmp_path: Path,
    spawned: Spawned,  # noqa: F811
) -> None:
    args = [FAUST, "-A", "app", "broker"] + (["--kafka"] if flavor == "kafka" else [])
    with open(tmp_path / "broker.err", "wb") as err:
        proc = spawned.add(
            subprocess.Popen(
                args, cwd=REPO, env=_env_without_vigil(), stdout=subprocess.PIPE, stderr=err
            )
        )
    assert proc.stdout is not None
    bootstrap = proc.stdout.readline().decode().strip()  # the first line: the address only
    assert bootstrap.startswith("127.0.0.1:"), (tmp_path / "broker.err").read_text()
    brokers = _broker_processes(proc.pid)
    spawned.pids.update(brokers)
    assert sorted(brokers.values()) == [flavor]

    # Topics are created on first use, with VIGIL_PARTITIONS partitions.
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(20)]
    assert produce(bootstrap, "round-trip", records) == 20
    got = consume(bootstrap, "round-trip", lambda rs: len(rs) >= 20, timeout_s=60)
    assert sorted((r.key, r.value) for r in got) == sorted(records)
    assert len({r.partition for r in got}) > 1

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    for pid in brokers:
        _wait_for(f"the {flavor} broker {pid} is gone", lambda pid=pid: not _alive(pid), 30)
    note = (tmp_path / "broker.err").read_text()
    assert "Traceback" not in note
    if flavor == "kafka":
        assert f"Apache Kafka {KAFKA_VERSION}" in note


def _mirror_settings(home: Path) -> None:
    """Point Maven at a repository that refuses connections (Maven Central unreachable)."""
    m2 = home / ".m2"
    m2.mkdir(parents=True)
    (m2 / "settings.xml").write_text(
        """<settings><mirrors><mirror><id>unreachable-central</id><mirrorOf>*</mirrorOf>
        <url>http://127.0.0.1:1/maven2</url></mirror></mirrors></settings>"""
    )


@pytest.mark.parametrize("missing", ["java", "mvn", "maven central"])
def test_broker_kafka_setup_errors_are_one_line(missing: str, tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    if missing == "java":
        path = str(tools)  # nothing at all
    elif missing == "mvn":
        java = subprocess.run(["which", "java"], capture_output=True, text=True, check=True)
        (tools / "java").symlink_to(java.stdout.strip())
        path = str(tools)
    else:
        path = os.environ["PATH"]  # Maven's launcher script needs the usual tools
        _mirror_settings(home)
    # An empty jar cache and local Maven repository.
    env = _env_without_vigil(PATH=path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    # Java (so Maven) takes its home from the password database, not from $HOME.
    env["MAVEN_OPTS"] = f"-Duser.home={home} -Dmaven.wagon.http.retryHandler.count=0"
    done = subprocess.run(
        [FAUST, "-A", "app", "broker", "--kafka"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == ""  # no address was printed
    expected = {
        "java": "java not found: install a JDK",
        "mvn": "mvn not found: install Maven",
        "maven central": "check access to Maven Central",
    }[missing]
    assert lines[0].startswith("vigil: broker: ") and expected in lines[0], lines[0]
    if missing == "maven central":
        # The fault was really injected: Maven tried (and failed) to download.
        assert (home / ".m2" / "repository").is_dir()
        assert "unreachable-central" in lines[0], lines[0]
    assert not (tmp_path / "cache" / "vigil" / f"kafka-{KAFKA_VERSION}").exists()


def test_demo_on_kafka_scores_transactions_with_a_kafka_worker(
    demo_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
    spawned: Spawned,  # noqa: F811
) -> None:
    from tests.integration.web_support import http

    log = tmp_path / "demo.out"
    with open(log, "wb") as out:
        demo = spawned.add(
            subprocess.Popen(
                [FAUST, "-A", "app", "demo", "--broker", "kafka", "--rate", "50"],
                cwd=REPO,
                env=demo_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )

    def roles() -> dict[str, int]:
        found = {role: pid for pid, role in _broker_processes(demo.pid).items()}
        for pid in _children(demo.pid):
            args = _cmdline(pid)
            for role in (b"worker", b"simulate"):
                if role in args and b"-A" in args:
                    found[role.decode()] = pid
        return found

    _wait_for("Kafka, worker and simulator run", lambda: len(roles()) == 3, timeout_s=120)
    running = roles()
    spawned.pids.update(running.values())
    assert set(running) == {"kafka", "worker", "simulate"}  # no tansu anywhere
    worker_env = Path(f"/proc/{running['worker']}/environ").read_bytes().split(b"\0")
    assert b"VIGIL_BROKER_FLAVOR=kafka" in worker_env

    metrics_url = f"http://127.0.0.1:{demo_env['VIGIL_WEB_PORT']}/metrics"

    def scored() -> float:
        try:
            text = http("GET", metrics_url).body.decode()
        except OSError:
            return 0.0  # the worker's web server is not up yet
        for line in text.splitlines():
            if line.startswith('vigil_transactions_consumed_total{outcome="scored"}'):
                return float(line.split()[-1])
        return 0.0

    _wait_for("the worker scores transactions", lambda: scored() > 0, timeout_s=120)
    output = log.read_text()
    assert f"Apache Kafka {KAFKA_VERSION}" in output and "rollover         off" in output

    demo.send_signal(signal.SIGTERM)
    assert demo.wait(timeout=90) == 0
    for role, pid in running.items():
        _wait_for(f"the {role} is gone", lambda pid=pid: not _alive(pid), timeout_s=30)
    assert "Traceback" not in log.read_text()
