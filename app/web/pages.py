"""HTML shells and security headers of the web view (pure code).

Pages are static shells: the data arrives as JSON and the browser script builds the DOM with
``textContent``, so no transaction value is ever parsed as HTML. The one value a shell carries
(the account id of ``/accounts/{id}``) is escaped with :func:`html.escape`. No inline script
or style, so the Content-Security-Policy can forbid both.
"""

from __future__ import annotations

import html
from importlib import resources

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: Headers on every response of the web view.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: Headers on HTML pages (and the static files they load).
PAGE_HEADERS = {**COMMON_HEADERS, "Content-Security-Policy": CSP, "X-Frame-Options": "DENY"}

STATIC_TYPES = {
    "app.js": "text/javascript",
    "account.js": "text/javascript",
    "vigil.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


def static_file(name: str) -> bytes | None:
    """Return a file of app/web/static, or ``None`` for a name that is not served."""
    if name not in STATIC_TYPES:
        return None
    return (resources.files("app.web") / "static" / name).read_bytes()


def _page(title: str, body_attrs: str, main: str, script: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/vigil.css">
</head>
<body{body_attrs}>
{main}
<script src="/static/{script}"></script>
</body>
</html>
"""


INDEX_MAIN = """<header>
  <h1><a href="/">Vigil</a> <span class="sub">live alerts</span></h1>
  <div id="stats" class="stats">
    <span class="stat tier-HIGH">HIGH <b id="count-HIGH">0</b></span>
    <span class="stat tier-MEDIUM">MEDIUM <b id="count-MEDIUM">0</b></span>
    <span class="stat tier-LOW">LOW <b id="count-LOW">0</b></span>
    <span class="stat">tx/s <b id="tx-rate">-</b></span>
    <span class="stat">latency p50 / p95 <b id="latency">-</b></span>
    <span class="stat">alerts last min <b id="alerts-minute">0</b></span>
    <span id="conn" class="conn">connecting…</span>
  </div>
</header>
<div class="toolbar">
  <label>Tier <select id="tier-filter">
    <option value="">all</option><option>HIGH</option><option>MEDIUM</option><option>LOW</option>
  </select></label>
  <label>Labelling token <input id="token" type="password" autocomplete="off"
    placeholder="VIGIL_WEB_TOKEN"></label>
  <span class="hint">Labelling needs the worker's token: start it with VIGIL_WEB_TOKEN set.</span>
</div>
<main class="split">
  <section class="list">
    <table id="alerts">
      <thead><tr><th>scored</th><th>tier</th><th>score</th><th>account</th><th>transaction</th>
        <th>amount</th><th>counterparty</th><th>top reason</th></tr></thead>
      <tbody id="alert-rows"></tbody>
    </table>
    <p id="empty" class="empty">No alerts yet. New alerts appear here as they happen.</p>
  </section>
  <section id="detail" class="detail" hidden>
    <h2>Alert <span id="d-id"></span></h2>
    <p><span id="d-tier" class="badge"></span> score <b id="d-score"></b>
      · model <span id="d-model"></span> · account <a id="d-account"></a></p>
    <div class="labels">
      <button id="label-fraud" type="button" class="fraud">fraud</button>
      <button id="label-legit" type="button" class="legit">legit</button>
      <span id="label-status" class="label-status"></span>
    </div>
    <h3>Why: reasons (signed contribution, log-odds)</h3>
    <div id="d-reasons" class="bars"></div>
    <h3>Rule hits</h3>
    <ul id="d-rules"></ul>
    <h3>Transaction</h3>
    <table class="kv"><tbody id="d-tx"></tbody></table>
    <h3>Velocity features at scoring time</h3>
    <table class="kv"><tbody id="d-features"></tbody></table>
  </section>
</main>"""


def index_html() -> str:
    """Return the live alerts page."""
    return _page("Vigil · live alerts", "", INDEX_MAIN, "app.js")


def account_html(account_id: str) -> str:
    """Return the account page shell; its data comes from ``/api/accounts/{id}``."""
    esc = html.escape(account_id, quote=True)
    main = f"""<header>
  <h1><a href="/">Vigil</a> <span class="sub">account</span> <span id="account-id">{esc}</span></h1>
</header>
<main class="account">
  <p id="status" class="status">loading…</p>
  <h3>Velocity state (as of the account's latest event)</h3>
  <table class="kv"><tbody id="state"></tbody></table>
  <h3>Recent alerts</h3>
  <table><thead><tr><th>scored</th><th>tier</th><th>score</th><th>transaction</th>
    <th>amount</th><th>top reason</th></tr></thead><tbody id="account-alerts"></tbody></table>
</main>"""
    return _page(f"Vigil · account {esc}", f' data-account="{esc}"', main, "account.js")
