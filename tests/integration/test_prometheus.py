"""The dashboard and the alert rules against a real Prometheus scraping a real worker."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.integration.kafka_io import produce
from tests.integration.prometheus_support import (
    PrometheusServer,
    has_finite_value,
    promtool,
    wait_for,
)
from tests.integration.scenario import build_scenario
from tests.monitoring_support import (
    RULE_TESTS,
    RULES,
    dashboard_queries,
    load_dashboard,
    load_rules,
    panels,
    rule_expressions,
    to_promql,
    variable_queries,
)

pytestmark = pytest.mark.integration


def _live_transactions(n: int, tag: str = "") -> list[tuple[bytes | None, bytes | None]]:
    """Transactions stamped now, so end-to-end latency is a real one."""
    now_ms = int(time.time() * 1000)
    records: list[tuple[bytes | None, bytes | None]] = []
    for i in range(n):
        account = f"acc-live-{i % 25}"
        tx = {
            "tx_id": f"live{tag}-{i}",
            "ts": now_ms + i,
            "account_id": account,
            "amount": 10.0 + (i % 40),
            "counterparty_id": f"m-{i % 7}",
            "type": "CARD",
            "country": "US",
        }
        records.append((account.encode(), orjson.dumps(tx)))
    return records


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    """Start Prometheus servers on demand; stop every one after the test."""
    servers: list[PrometheusServer] = []

    def start(targets: list[str]) -> PrometheusServer:
        workdir = tmp_path / f"prometheus-{len(servers)}"
        workdir.mkdir()
        server = PrometheusServer(workdir, targets, [RULES])
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def test_dashboard_and_rules_against_prometheus_scraping_a_worker(
    broker: Any, worker_env: dict[str, str], start_worker: Any, prometheus_for: Any
) -> None:
    env = worker_env
    worker = start_worker(env)
    target = worker.web_url.removeprefix("http://")
    prom = prometheus_for([target])

    sc = build_scenario()
    live = _live_transactions(300)
    topic = env["VIGIL_TOPIC_TRANSACTIONS"]
    produce(broker.bootstrap, topic, sc.records + live)
    n_valid = len(sc.valid) + len(live)

    # Prometheus sees exactly what the worker did.
    wait_for(
        lambda: prom.value('sum(vigil_transactions_consumed_total{outcome="scored"})') == n_valid,
        120,
        f"{n_valid} scored transactions in Prometheus",
    )
    assert prom.value("sum(vigil_deadletters_total)") == len(sc.invalid)
    assert prom.value('sum(vigil_deadletters_total{reason="payload"})') == sum(
        1 for f in sc.invalid.values() if f == "payload"
    )
    assert prom.value('sum(vigil_alerts_total{tier="HIGH"})') >= 10  # the card-testing burst
    assert prom.value('up{job="vigil"}') == 1.0
    wait_for(
        lambda: prom.value("vigil_score_drift_window_scores") == n_valid,
        60,
        "the drift window to hold every score",
    )
    psi = prom.value("vigil_score_drift_psi")
    assert psi is not None and psi > 0.0

    # Every dashboard query parses, and every panel shows data (all timers have run).
    queries = dashboard_queries()
    assert queries
    for title, ref, expr in queries:
        doc = prom.query(expr)
        assert doc["status"] == "success", f"{title}/{ref}: {doc.get('error')} in {expr}"

    rounds = iter(range(1000))

    def empty_panels() -> list[str]:
        # Traffic keeps flowing, as in production, so rate() windows are never empty.
        produce(broker.bootstrap, topic, _live_transactions(20, tag=f"r{next(rounds)}"))
        missing = []
        for panel in panels(load_dashboard()):
            docs = [prom.query(to_promql(t["expr"])) for t in panel["targets"]]
            if not all(d["data"]["result"] for d in docs) or not any(
                has_finite_value(d) for d in docs
            ):
                missing.append(panel["title"])
        return missing

    try:
        wait_for(lambda: not empty_panels(), 90, "every panel to have data", interval_s=2.0)
    except AssertionError:
        raise AssertionError(f"panels without data: {empty_panels()}") from None
    # Most scored transactions are the live ones: the median end-to-end latency is theirs.
    p50 = prom.value(
        "histogram_quantile(0.5, sum by (le) (rate(vigil_end_to_end_latency_seconds_bucket[5m])))"
    )
    assert p50 is not None and 0 < p50 < 30
    for expr in variable_queries():
        assert prom.query(expr)["data"]["result"], expr
    lag = prom.query("vigil_consumer_lag")["data"]["result"]
    assert {r["metric"]["topic"] for r in lag} >= {env["VIGIL_TOPIC_TRANSACTIONS"]}
    assert len(lag) >= 4  # every partition of the transactions topic, one worker holds them all

    # Every rule expression parses, and Prometheus evaluates every rule without error.
    for name, expr in rule_expressions():
        doc = prom.query(expr)
        assert doc["status"] == "success", f"{name}: {doc.get('error')}"
    n_rules = len(rule_expressions())

    def evaluated_rules() -> list[dict[str, Any]]:
        groups = prom.api("rules")["data"]["groups"]
        return [
            r for g in groups for r in g["rules"] if r.get("lastEvaluation", "").startswith("2")
        ]

    wait_for(lambda: len(evaluated_rules()) == n_rules, 30, "every rule to be evaluated")
    for rule in evaluated_rules():
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"

    # promtool: the worker's own exposition is clean.
    with urllib.request.urlopen(f"{worker.web_url}/metrics", timeout=10) as resp:
        exposition = resp.read()
    assert b"vigil_faust_messages_received_total" in exposition  # Faust's own sensor
    checked = promtool("check", "metrics", stdin=exposition)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == b"" and checked.stderr.strip() == b""


def test_promtool_checks_and_unit_tests_of_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"SUCCESS: 10 rules found" in checked.stdout
    tested = promtool("test", "rules", *map(str, RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert b"SUCCESS" in tested.stdout


@pytest.mark.parametrize(
    ("replacement", "breaks"),
    [("vector(1) == 0", "firing"), ("vector(1)", "quiet")],
    ids=["alerts-never-fire", "alerts-always-fire"],
)
def test_rule_unit_tests_fail_when_an_alert_misbehaves(
    tmp_path: Path, replacement: str, breaks: str
) -> None:
    """Each alert's firing case and quiet case really depend on its expression."""
    alerts = [name for name, _ in rule_expressions() if not name.startswith("vigil:")]
    for alert in alerts:
        rules = load_rules()
        for group in rules["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alert:
                    rule["expr"] = replacement
        rules_dir = tmp_path / alert / "rules"
        rules_dir.mkdir(parents=True)
        (rules_dir / "vigil.rules.yml").write_text(yaml.safe_dump(rules))
        tests_dir = tmp_path / alert / "tests"
        tests_dir.mkdir()
        for path in RULE_TESTS:
            (tests_dir / path.name).write_text(path.read_text())
        result = promtool("test", "rules", *(str(tests_dir / p.name) for p in RULE_TESTS))
        output = (result.stdout + result.stderr).decode()
        assert result.returncode != 0, f"{alert} {breaks} case not tested"
        assert re.search(rf"alertname: {alert}\b", output), output
