"""Read the dashboard and the alert rules the way Grafana and Prometheus would, for tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "vigil.json"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = MONITORING / "grafana" / "provisioning" / "dashboards" / "vigil.yml"
RULES = MONITORING / "prometheus" / "rules" / "vigil.rules.yml"
#: promtool unit tests of the rules (one file per evaluation interval).
RULE_TESTS = sorted((MONITORING / "prometheus" / "tests").glob("*.test.yml"))

_VIGIL_METRIC = re.compile(r"\bvigil_[a-z0-9_]+")


def load_dashboard() -> dict[str, Any]:
    """Return the dashboard JSON."""
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def load_rules() -> dict[str, Any]:
    """Return the rules file."""
    doc: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return doc


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every panel that shows data (rows excluded, nested rows included)."""
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def to_promql(expr: str, rate_interval: str = "2m") -> str:
    """Replace the Grafana variables of a dashboard query by what Grafana would send."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
        .replace('=~"$instance"', '=~".*"')
    )


def dashboard_queries() -> list[tuple[str, str, str]]:
    """Return ``(panel title, refId, PromQL)`` of every target, variables substituted."""
    return [
        (panel["title"], target["refId"], to_promql(target["expr"]))
        for panel in panels(load_dashboard())
        for target in panel["targets"]
    ]


def variable_queries() -> list[str]:
    """Return the PromQL inside the dashboard's template variables (``label_values``)."""
    out = []
    for var in load_dashboard()["templating"]["list"]:
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
        out.append(match.group(1) if match else query)
    return out


def rule_expressions() -> list[tuple[str, str]]:
    """Return ``(alert or record name, expr)`` of every rule."""
    return [
        (rule.get("alert") or rule["record"], str(rule["expr"]))
        for group in load_rules()["groups"]
        for rule in group["rules"]
    ]


def vigil_metric_names(expr: str) -> set[str]:
    """Return the ``vigil_*`` metric names a PromQL expression reads."""
    return set(_VIGIL_METRIC.findall(expr))
