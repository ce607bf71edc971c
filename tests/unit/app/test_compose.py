"""docker-compose.yml and Dockerfile, proven statically (no Docker engine runs here)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from app.kafka.local_kafka import KAFKA_VERSION
from tests.debian_packages import ensure_tool

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).parents[1] / "data" / "compose-spec.json"
SCHEMA_SHA256 = "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c"


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def _validator() -> jsonschema.protocols.Validator:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def test_docker_compose_config_accepts_the_file() -> None:
    binary = ensure_tool("docker-compose", "docker-compose")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # The same command rejects a broken file (it really validates).
    bad = _compose()
    bad["services"]["grafana"]["depends_on"]["prometheus"]["condition"] = "service_sleepy"
    broken = subprocess.run(
        [binary, "-f", "-", "config", "-q"],
        cwd=ROOT,
        input=yaml.safe_dump(bad),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert broken.returncode != 0


def test_compose_file_validates_against_the_compose_specification_schema() -> None:
    validator = _validator()
    doc = _compose()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
    doc["services"]["prometheus"]["healthcheck"]["retries"] = "many"
    doc["services"]["simulator"]["depends_on"]["kafka"]["condition"] = "whenever"
    assert len(list(validator.iter_errors(doc))) == 2


def test_stack_has_every_service_with_health_conditioned_dependencies() -> None:
    services = _compose()["services"]
    expected = {"kafka", "topics", "trainer", "worker-1", "worker-2", "simulator"}
    assert expected | {"prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert spec["condition"] in (
                "service_healthy",
                "service_completed_successfully",
                "service_started",
            )
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name in ("kafka", "worker-1", "worker-2", "prometheus", "grafana"):
        assert "healthcheck" in services[name], name


def test_workers_are_built_from_the_dockerfile_with_named_state_volumes() -> None:
    doc = _compose()
    services, volumes = doc["services"], doc["volumes"]
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        assert worker["build"] == "."
        mounts = {m.split(":")[1]: m.split(":")[0] for m in worker["volumes"]}
        assert mounts["/var/lib/vigil"] in volumes  # a named volume for RocksDB state
    states = {services[n]["volumes"][0].split(":")[0] for n in ("worker-1", "worker-2")}
    assert len(states) == 2  # each worker its own state
    for name in ("prometheus-data", "grafana-data", "kafka-data"):
        assert name in volumes


def test_prometheus_and_grafana_mount_files_that_exist() -> None:
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        for mount in services[name]["volumes"]:
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    prom = services["prometheus"]
    assert any(m.endswith(":/etc/prometheus/rules:ro") for m in prom["volumes"])
    grafana_env = services["grafana"]["environment"]
    home = grafana_env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == "/etc/grafana/dashboards/vigil.json"
    assert (ROOT / "monitoring/grafana/dashboards/vigil.json").exists()
    provider = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/vigil.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    scrape = yaml.safe_load((ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    vigil = next(job for job in scrape["scrape_configs"] if job["job_name"] == "vigil")
    assert vigil["static_configs"][0]["targets"] == ["worker-1:6066", "worker-2:6066"]


def test_dockerfile_is_slim_and_runs_as_non_root() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    base = next(ln for ln in lines if ln.startswith("FROM "))
    assert base.endswith("-slim")
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def _kafka_services(services: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in services.items() if str(s.get("image", "")).startswith("apache/")}


def test_kafka_is_the_version_the_tests_run() -> None:
    kafka = _kafka_services(_compose()["services"])
    assert set(kafka) == {"kafka", "topics"}
    for name, service in kafka.items():
        assert service["image"] == f"apache/kafka:{KAFKA_VERSION}", name


def test_replication_settings_match_the_broker_count() -> None:
    services = _compose()["services"]
    brokers = [
        service["environment"]
        for service in _kafka_services(services).values()
        if "broker" in str(service.get("environment", {}).get("KAFKA_PROCESS_ROLES", ""))
    ]
    replicas = len(brokers)
    in_sync = 2 if replicas >= 3 else 1  # one broker may be down; with one there is no choice
    for env in brokers:
        for key in (
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
        ):
            assert int(env[key]) == replicas, key
        for key in (
            "KAFKA_MIN_INSYNC_REPLICAS",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
        ):
            assert int(env[key]) == in_sync, key
    topics = services["topics"]
    assert int(topics["environment"]["REPLICATION_FACTOR"]) == replicas
    assert '--replication-factor "$$REPLICATION_FACTOR"' in topics["command"][0]
    for name in ("worker-1", "worker-2", "trainer", "simulator"):
        assert int(services[name]["environment"]["VIGIL_REPLICATION_FACTOR"]) == replicas, name


def _loaders() -> dict[str, Callable[[Path], object]]:
    from models.aml.lists import load_id_list, load_suppressions
    from models.aml.rulebook import load_rulebook

    return {
        "VIGIL_RULES_PATH": load_rulebook,
        "VIGIL_ALLOWLIST_PATH": load_id_list,
        "VIGIL_DENYLIST_PATH": load_id_list,
        "VIGIL_SUPPRESSIONS_PATH": load_suppressions,
    }


def test_workers_serve_rules_and_lists_from_host_directories_they_reload() -> None:
    services = _compose()["services"]
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        mounts = {}
        for mount in worker["volumes"]:
            source, target, *mode = mount.split(":")
            mounts[PurePosixPath(target)] = (source, mode)
        for var, load in _loaders().items():
            in_container = PurePosixPath(worker["environment"][var])
            # The file's directory is the mount: an editor's rename-over reaches the worker.
            source, mode = mounts[in_container.parent]
            assert source.startswith("./") and mode == ["ro"], (name, var)
            assert (ROOT / source).is_dir(), source
            on_host = ROOT / source / in_container.name
            load(on_host)  # exists and is a file the worker accepts at start


def test_trainer_trains_only_when_no_artifact_exists() -> None:
    services = _compose()["services"]
    trainer = services["trainer"]
    assert trainer["command"][:4] == ["faust", "-A", "app", "train"]
    assert "--if-missing" in trainer["command"]
    model_dir = str(PurePosixPath(trainer["environment"]["VIGIL_MODEL_PATH"]).parent)
    assert f"model:{model_dir}" in trainer["volumes"]
    for name in ("worker-1", "worker-2"):
        assert f"model:{model_dir}:ro" in services[name]["volumes"]


def test_train_if_missing_leaves_an_existing_artifact_alone(tmp_path: Path) -> None:
    served = tmp_path / "served.json"
    served.write_text("the artifact a worker serves")
    faust = str(Path(sys.executable).parent / "faust")
    done = subprocess.run(
        [faust, "-A", "app", "train", "--if-missing", "--output", str(served)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "not training (--if-missing)" in done.stdout
    assert served.read_text() == "the artifact a worker serves"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served.json"]
