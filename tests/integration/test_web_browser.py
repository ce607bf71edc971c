"""The analyst web view in a real headless Chromium against a real worker on the embedded broker."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser import Browser, ensure_chromium
from tests.integration.kafka_io import produce
from tests.integration.web_support import (
    HOSTILE,
    HOSTILE_MERCHANT,
    TOKEN,
    WebWorker,
    find_alert,
    find_label,
    hostile_drain,
    in_thread,
    start_web_worker,
)

pytestmark = pytest.mark.integration

ROW_TEXT = (
    "(() => { const tr = [...document.querySelectorAll('#alert-rows tr')]"
    ".find(t => t.dataset.alertId === {id}); "
    "return tr ? [...tr.children].map(td => td.textContent) : null; })()"
)
#: Anything the hostile strings could have injected: a second script, an img, the flag.
INJECTED = (
    "[document.scripts.length, document.querySelectorAll('img').length, typeof window.__pwned]"
)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed with apt-get if missing (root or passwordless sudo)."""
    return ensure_chromium()


@pytest.fixture(scope="module")
def web_worker(
    broker: Any, trained_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebWorker]:
    """One worker with a labelling token for the tests of this module."""
    yield from start_web_worker(broker, trained_model, tmp_path_factory.mktemp("web-browser"))


async def test_live_alert_detail_label_and_hostile_text(
    chromium: str, web_worker: WebWorker, tmp_path: Path
) -> None:
    worker = web_worker
    sc, drain_id = hostile_drain("b1")
    account = sc.valid[drain_id]["account_id"]
    async with Browser(chromium, tmp_path / "profile", tmp_path / "chromium.log") as page:
        await page.goto(worker.url + "/")
        await page.wait_for("document.getElementById('conn').textContent === 'live'")
        # A page reload would drop this marker: the alert must arrive without one.
        await page.evaluate("window.__sameDocument = 'yes'")

        await in_thread(produce, worker.bootstrap, worker.topic("transactions"), sc.records)
        cells = await page.wait_for(
            ROW_TEXT.replace("{id}", json.dumps(drain_id)),
            timeout_s=90,
            what="the alert to appear in the open page",
        )
        assert await page.evaluate("window.__sameDocument") == "yes"
        # Columns: scored, tier, score, account, transaction, amount, counterparty, reason.
        assert cells[3] == account
        assert cells[4] == drain_id
        assert cells[6] == HOSTILE_MERCHANT
        assert cells[1] in ("HIGH", "MEDIUM", "LOW")
        assert await page.evaluate(INJECTED) == [1, 0, "undefined"]

        # Detail: click the row; its reasons are the alert's, from the alert topic.
        alert = await in_thread(find_alert, worker, drain_id)
        await page.click(f"#alert-rows tr[data-alert-id={json.dumps(drain_id)}]")
        await page.wait_for(
            f"document.getElementById('d-id').textContent === {json.dumps(drain_id)}",
            what="the detail view",
        )
        shown = await page.evaluate(
            "[...document.querySelectorAll('#d-reasons .reason')].map(e => e.textContent)"
        )
        assert len(shown) == len(alert["reasons"]) >= 1
        for text, reason in zip(shown, alert["reasons"], strict=True):
            assert text.startswith(reason["feature"] + " = ")
        bars = await page.evaluate(
            "[...document.querySelectorAll('#d-reasons .bar')].map(e => e.style.width)"
        )
        assert len(bars) == len(shown) and all(w.endswith("%") for w in bars)
        tx_rows = await page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#d-tx tr')]"
            ".map(tr => [tr.children[0].textContent, tr.children[1].textContent]))"
        )
        assert tx_rows["merchant_category"] == HOSTILE
        assert tx_rows["account_id"] == account
        assert await page.evaluate("document.getElementById('d-score').textContent") == (
            f"{alert['score']:.4f}"
        )

        # Label it: token typed into the page, a real click on "fraud".
        await page.type_text("#token", TOKEN)
        await page.click("#label-fraud")
        status = await page.wait_for(
            "(() => { const s = document.getElementById('label-status');"
            " return s.className.includes('done') || s.className.includes('error')"
            " ? [s.className, s.textContent] : null; })()",
            what="the label to be acknowledged",
        )
        assert "done" in status[0], status
        key, label = await in_thread(find_label, worker, drain_id)
        assert key == drain_id.encode()
        assert label["label"] == "fraud"
        assert label["source"] == "web"
        assert label["account_id"] == account
        assert label["counterparty_id"] == HOSTILE_MERCHANT
        assert label["tx_ts"] == sc.valid[drain_id]["ts"]
        assert await page.evaluate(INJECTED) == [1, 0, "undefined"]
        shot = await page.screenshot(tmp_path / "alerts.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # The account page: velocity state from the table, the hostile id as text.
        await page.goto(worker.url + "/accounts/" + urllib.parse.quote(account, safe=""))
        state = await page.wait_for(
            "(() => { const rows = [...document.querySelectorAll('#state tr')];"
            " return rows.length ? Object.fromEntries(rows.map("
            "tr => [tr.children[0].textContent, tr.children[1].textContent])) : null; })()",
            what="the account state",
        )
        assert state["transactions counted"] == "11"
        assert state["count_7d"] == "11"
        assert await page.evaluate("document.getElementById('account-id').textContent") == account
        assert (await page.evaluate("document.title")).endswith(account)
        alert_links = await page.evaluate(
            "[...document.querySelectorAll('#account-alerts a')].map(a => a.textContent)"
        )
        assert drain_id in alert_links
        assert await page.evaluate(INJECTED) == [1, 0, "undefined"]
        await page.screenshot(tmp_path / "account.png")

        assert page.console_errors == []
