"""The Grafana dashboard and the alert rules, checked structurally (Grafana is not here)."""

from __future__ import annotations

import yaml

from monitoring.metrics import VigilMetrics
from tests.monitoring_support import (
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    RULE_TESTS,
    dashboard_queries,
    load_dashboard,
    load_rules,
    panels,
    rule_expressions,
    vigil_metric_names,
)

REQUIRED_ALERTS = {
    "VigilWorkerDown",
    "VigilConsumerLagGrowing",
    "VigilDeadLetterRateHigh",
    "VigilEndToEndLatencyP99OverBudget",
    "VigilHighAlertRateAbnormal",
    "VigilScoreDrift",
    "VigilNoTransactions",
    "VigilFileReloadFailed",
}


def _exposed_names() -> set[str]:
    """Return every series name the worker can expose, labelled families without children too."""
    metrics = VigilMetrics()
    metrics.faust_monitor()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def _provisioned_uid() -> str:
    doc = yaml.safe_load(DATASOURCES.read_text())
    (datasource,) = doc["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    return str(datasource["uid"])


def test_every_panel_has_targets_on_the_provisioned_datasource() -> None:
    uid = _provisioned_uid()
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"]
    shown = panels(dashboard)
    assert len(shown) >= 15
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in shown:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == uid, panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0
    for var in dashboard["templating"]["list"]:
        assert var["datasource"]["uid"] == uid


def test_dashboard_is_provisioned_from_a_file_provider() -> None:
    doc = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


def test_dashboard_covers_what_operators_need() -> None:
    text = " ".join(expr for _, _, expr in dashboard_queries())
    for metric in (
        "vigil_transactions_consumed_total",
        "vigil_alerts_total",
        "vigil_deadletters_total",
        "vigil_scoring_latency_seconds_bucket",
        "vigil_end_to_end_latency_seconds_bucket",
        "vigil_batch_size_bucket",
        "vigil_consumer_lag",
        "vigil_score_bucket",
        "vigil_score_drift_psi",
        "vigil_model_info",
        "vigil_table_keys",
    ):
        assert metric in text, metric
    assert "by (instance" in text  # per worker, beside the totals


def test_dashboard_and_rules_read_only_metrics_the_worker_exposes() -> None:
    exposed = _exposed_names()
    queries = [expr for _, _, expr in dashboard_queries()] + [e for _, e in rule_expressions()]
    used = set().union(*(vigil_metric_names(q) for q in queries))
    assert used, "no vigil_ metric found in the queries"
    assert used - exposed == set()


def test_every_required_alert_has_summary_runbook_and_severity() -> None:
    alerts = {
        rule["alert"]: rule
        for group in load_rules()["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["runbook"], name
        assert rule["labels"]["severity"] in ("warning", "critical"), name


def test_rule_unit_tests_cover_each_alert_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    assert RULE_TESTS
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../rules/vigil.rules.yml"]
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing >= REQUIRED_ALERTS
    assert quiet >= REQUIRED_ALERTS
