"""The web view's JSON API and page headers over HTTP, against a real worker."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.kafka_io import produce
from tests.integration.web_support import (
    HOSTILE,
    HOSTILE_MERCHANT,
    TOKEN,
    WebWorker,
    alert_record,
    find_label,
    http,
    start_web_worker,
)

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
AUTH = {**JSON, "Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def web_worker(
    broker: Any, trained_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebWorker]:
    """One worker with a labelling token for the tests of this module."""
    yield from start_web_worker(broker, trained_model, tmp_path_factory.mktemp("web-api"))


def _wait_json(url: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = http("GET", url)
        if reply.status == 200:
            return reply.json()
        assert time.monotonic() < deadline, f"{url}: {reply.status} {reply.body[:300]!r}"
        time.sleep(0.2)


def test_alerts_produced_to_any_partition_are_served(web_worker: WebWorker) -> None:
    worker = web_worker
    # Produced straight to the alert topics, spread over every partition.
    records = []
    for i in range(8):
        tier = ("HIGH", "LOW")[i % 2]
        alert = alert_record(f"direct-{i}", f"acct-direct-{i}", tier)
        records.append((tier, alert))
    for tier, alert in records:
        topic = worker.topic(f"alerts_{tier}")
        produce(worker.bootstrap, topic, [(alert["account_id"].encode(), orjson.dumps(alert))])

    for _, alert in records:
        assert _wait_json(worker.url + "/api/alerts/" + alert["alert_id"]) == alert
    assert records[-1][1]["rules"][0]["explanation"].endswith(HOSTILE)

    high = http("GET", worker.url + "/api/alerts?tier=high&limit=1000").json()
    ids = [a["alert_id"] for a in high["alerts"]]
    assert {f"direct-{i}" for i in range(0, 8, 2)} <= set(ids)
    assert all(a["tier"] == "HIGH" for a in high["alerts"])
    two = http("GET", worker.url + "/api/alerts?limit=2").json()
    assert two["count"] == 2 and len(two["alerts"]) == 2

    stats = http("GET", worker.url + "/api/stats").json()
    assert stats["tiers"]["HIGH"] >= 4 and stats["tiers"]["LOW"] >= 4
    assert stats["alerts_last_minute"] >= 8

    # An account with alerts but no velocity state (nothing was scored for it).
    acct = http("GET", worker.url + "/api/accounts/acct-direct-3").json()
    assert acct["state"] is None
    assert [a["alert_id"] for a in acct["alerts"]] == ["direct-3"]


def test_errors_are_json_with_clear_status(web_worker: WebWorker) -> None:
    url = web_worker.url
    cases = [
        ("GET", "/api/alerts?limit=0", None, {}, 400, "limit"),
        ("GET", "/api/alerts?limit=abc", None, {}, 400, "limit"),
        ("GET", "/api/alerts?tier=CRITICAL", None, {}, 400, "tier"),
        ("GET", "/api/alerts/no-such-alert", None, {}, 404, "no alert"),
        ("GET", "/api/accounts/no-such-account", None, {}, 404, "no state"),
        ("GET", "/static/../settings.py", None, {}, 404, ""),
        ("POST", "/api/labels", b'{"tx_id":"t","label":"fraud"}', JSON, 401, "VIGIL_WEB_TOKEN"),
        (
            "POST",
            "/api/labels",
            b'{"tx_id":"t","label":"fraud"}',
            {**JSON, "Authorization": "Bearer wrong"},
            401,
            "VIGIL_WEB_TOKEN",
        ),
        ("POST", "/api/labels", b"tx_id=t", {**AUTH, "Content-Type": "text/plain"}, 415, "json"),
        ("POST", "/api/labels", b"{not json", AUTH, 400, "JSON"),
        ("POST", "/api/labels", b"[1]", AUTH, 400, "object"),
        ("POST", "/api/labels", b'{"tx_id":"t","label":"maybe"}', AUTH, 422, "label"),
        ("POST", "/api/labels", b'{"label":"fraud"}', AUTH, 422, "tx_id"),
        ("POST", "/api/labels", b"{" + b" " * 20000 + b"}", AUTH, 413, "larger"),
    ]
    for method, path, body, headers, status, word in cases:
        reply = http(method, url + path, body, headers)
        assert reply.status == status, (path, body, reply.status, reply.body[:200])
        if reply.status != 404 or word:
            assert reply.headers["Content-Type"].startswith("application/json"), path
            assert word.lower() in reply.json()["error"].lower(), (path, reply.json())
    denied = http("POST", url + "/api/labels", b"{}", JSON)
    assert denied.headers["WWW-Authenticate"].startswith("Bearer")


def test_label_api_completes_the_record_from_the_alert(web_worker: WebWorker) -> None:
    worker = web_worker
    alert = alert_record("label-me", "acct-label", "MEDIUM")
    produce(
        worker.bootstrap,
        worker.topic("alerts_medium"),
        [(b"acct-label", orjson.dumps(alert))],
    )
    _wait_json(worker.url + "/api/alerts/label-me")
    reply = http(
        "POST",
        worker.url + "/api/labels",
        orjson.dumps({"tx_id": "label-me", "label": "legit", "account_id": "forged"}),
        AUTH,
    )
    assert reply.status == 201, reply.body
    assert reply.json()["topic"] == worker.topic("labels")
    key, label = find_label(worker, "label-me")
    assert key == b"label-me"
    assert label["label"] == "legit"
    assert label["account_id"] == "acct-label"  # the alert's, not the client's
    assert label["counterparty_id"] == HOSTILE_MERCHANT
    assert label["tx_ts"] == alert["event_ts"]
    assert label["source"] == "web"


def test_pages_carry_csp_and_escape_the_account_id(web_worker: WebWorker) -> None:
    account = "acc-" + HOSTILE
    page = http("GET", web_worker.url + "/accounts/" + urllib.parse.quote(account, safe=""))
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    html = page.body.decode()
    assert HOSTILE not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&quot;&#x27;&gt;&lt;img" in html
    assert html.count("<script") == 1  # only the page's own external script
    index = http("GET", web_worker.url + "/")
    assert index.headers["Content-Security-Policy"] == csp
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in index.body.decode()  # no inline script anywhere
    js = http("GET", web_worker.url + "/static/app.js")
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    for sink in (b".innerHTML", b".outerHTML", b"insertAdjacentHTML", b"document.write"):
        assert sink not in js.body
