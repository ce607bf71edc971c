"""The web API's checks, label building, account view, pages and table routing (no server)."""

from __future__ import annotations

import html

import pytest

from app.web import api, pages
from models.features import AccountState, update_account
from models.labels import parse_label
from models.transaction import parse_transaction


def _error(fn: object, *args: object) -> api.ApiError:
    with pytest.raises(api.ApiError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


def test_limit_and_tier() -> None:
    assert api.parse_limit(None) == api.DEFAULT_LIMIT
    assert api.parse_limit("") == api.DEFAULT_LIMIT
    assert api.parse_limit("7") == 7
    for bad in ("0", "-1", "1001", "x", "1.5"):
        assert _error(api.parse_limit, bad).status == 400
    assert api.parse_tier(None) is None and api.parse_tier("") is None
    assert api.parse_tier("medium") == "MEDIUM"
    err = _error(api.parse_tier, "MINIMAL")
    assert err.status == 400 and "HIGH" in err.message


def test_token_check() -> None:
    api.check_token("Bearer s3cret", "s3cret")
    api.check_token("bearer  s3cret ", "s3cret")
    disabled = _error(api.check_token, "Bearer anything", "")
    assert disabled.status == 403 and "VIGIL_WEB_TOKEN" in disabled.message
    for header in (None, "", "Bearer", "Bearer ", "Basic s3cret", "Bearer s3cre", "s3cret"):
        err = _error(api.check_token, header, "s3cret")
        assert err.status == 401 and "VIGIL_WEB_TOKEN" in err.message, header
    assert err.body() == {"error": err.message, "status": 401}


def test_body_checks() -> None:
    api.check_body("application/json; charset=utf-8", 10, 100)
    api.check_body("application/json", None, 100)
    assert _error(api.check_body, "application/json", 101, 100).status == 413
    assert _error(api.check_body, "text/plain", 10, 100).status == 415
    assert api.decode_json_object(b'{"a": 1}', 100) == {"a": 1}
    assert _error(api.decode_json_object, b"{" + b" " * 100 + b"}", 100).status == 413
    assert _error(api.decode_json_object, b"{oops", 100).status == 400
    assert _error(api.decode_json_object, b"[1]", 100).status == 400


ALERT = {
    "alert_id": "tx-1",
    "tx_id": "tx-1",
    "account_id": "acc-1",
    "event_ts": 1709542800000,
    "transaction": {"tx_id": "tx-1", "counterparty_id": "m-9", "amount": 5.0},
}


def test_label_is_completed_from_the_alert() -> None:
    label = api.build_label({"tx_id": "tx-1", "label": "fraud"}, ALERT, now_ms=42)
    assert label.to_dict() == {
        "tx_id": "tx-1",
        "label": "fraud",
        "source": "web",
        "ts": 42,
        "counterparty_id": "m-9",
        "account_id": "acc-1",
        "tx_ts": 1709542800000,
    }
    assert parse_label(label.to_bytes()) == label  # what the labels agent will read
    forged = api.build_label({"tx_id": "tx-1", "label": "legit", "account_id": "x"}, ALERT, 1)
    assert forged.account_id == "acc-1"


def test_label_without_an_alert_keeps_what_the_client_knows() -> None:
    doc = {"tx_id": "old", "label": "legit", "account_id": "a", "source": "back-office"}
    label = api.build_label(doc, None, now_ms=5)
    assert (label.account_id, label.counterparty_id, label.tx_ts_ms) == ("a", None, None)
    assert label.source == "back-office"
    for bad, field in (({"label": "fraud"}, "tx_id"), ({"tx_id": "t", "label": "x"}, "label")):
        err = _error(api.build_label, bad, None, 1)
        assert err.status == 422 and err.extra == {"field": field}


def test_account_view_reads_the_table_value() -> None:
    assert api.account_view("a", None) is None
    state = None
    for i, amount in enumerate((10.0, 20.0, 30.0)):
        tx = parse_transaction(
            f'{{"tx_id": "t{i}", "ts": {1709542800000 + i * 60_000}, "account_id": "a", '
            f'"amount": {amount}, "counterparty_id": "m{i}", "device_id": "d"}}'.encode(),
            4096,
        )
        _, state = update_account(state, tx)
    assert isinstance(state, AccountState)
    view = api.account_view("a", state.to_bytes())
    assert view is not None
    assert view["tx_count"] == 3
    assert view["mean_amount"] == pytest.approx(20.0)
    assert view["std_amount"] == pytest.approx(10.0)
    assert view["first_ts"] == 1709542800000 and view["last_ts"] == 1709542920000
    assert view["windows"]["count_1h"] == 3 and view["windows"]["sum_24h"] == 60.0
    assert view["counterparties_remembered"] == 3 and view["devices_remembered"] == 1


def test_pages_escape_and_load_no_inline_code() -> None:
    hostile = """<script>alert(1)</script>"' onmouseover="x\""""
    page = pages.account_html(hostile)
    assert hostile not in page
    assert html.escape(hostile, quote=True) in page
    assert page.count("<script") == 1 and '<script src="/static/account.js">' in page
    index = pages.index_html()
    assert index.count("<script") == 1 and "style=" not in index and "style=" not in page
    assert "'unsafe-inline'" not in pages.CSP and "script-src 'self'" in pages.CSP
    assert pages.PAGE_HEADERS["Content-Security-Policy"] == pages.CSP


def test_static_files_are_an_allow_list() -> None:
    for name in pages.STATIC_TYPES:
        assert pages.static_file(name)
    assert pages.static_file("../views.py") is None
    assert pages.static_file("feed.py") is None


def test_table_route_hashes_the_same_key_bytes_the_agent_writes() -> None:
    """``app.table_route`` partitions the key the changelog topic's serializer makes.

    The agent writes the table (and its changelog) under ``account_id.encode()`` in the
    partition the producer's murmur2 partitioner gives that key. The route must hash the
    same bytes, not a JSON-quoted string, or requests would go to the wrong worker.
    """
    from tables.accounts import accounts_table

    for account in ("acc-1", "acc-é", "<x>\"'"):
        key = accounts_table.changelog_topic.prepare_key(account, None)[0]
        assert key == account.encode()
