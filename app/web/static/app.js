// Vigil live alerts page. Every value from a transaction reaches the DOM through
// textContent (never innerHTML), so ids or merchants holding markup render as text.
"use strict";

const MAX_ROWS = 200;
const alerts = new Map(); // alert_id -> summary
let order = []; // alert ids, newest first
let selected = null;
let selectedAlert = null;
let connected = false;
let workerStatus = null; // the stats' status: live, behind, stalled or starting

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmtTime(ms) {
  if (typeof ms !== "number") return "";
  const d = new Date(ms);
  return isNaN(d.getTime()) ? String(ms) : d.toISOString().replace("T", " ").slice(0, 19);
}

function fmtNum(v, digits) {
  if (v === null || v === undefined) return "missing";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 3 : digits);
}

function accountHref(id) {
  return "/accounts/" + encodeURIComponent(id);
}

function reasonText(r) {
  if (!r) return "";
  const sign = r.contribution >= 0 ? "+" : "";
  return r.feature + "=" + fmtNum(r.value) + " (" + sign + fmtNum(r.contribution, 2) + ")";
}

// ---- live list -------------------------------------------------------------------

function addAlert(summary, fresh) {
  const id = summary.alert_id;
  if (alerts.has(id)) order = order.filter((x) => x !== id);
  alerts.set(id, Object.assign({}, summary, { fresh: fresh }));
  order.unshift(id);
  while (order.length > 1000) alerts.delete(order.pop());
}

function renderList() {
  const tier = $("tier-filter").value;
  const body = $("alert-rows");
  const rows = [];
  for (const id of order) {
    const a = alerts.get(id);
    if (tier && a.tier !== tier) continue;
    rows.push(row(a));
    a.fresh = false;
    if (rows.length >= MAX_ROWS) break;
  }
  body.replaceChildren(...rows);
  $("empty").hidden = rows.length > 0;
}

function row(a) {
  const tr = el("tr", null, a.fresh ? "new" : "");
  tr.dataset.alertId = a.alert_id;
  if (a.alert_id === selected) tr.classList.add("selected");
  tr.append(el("td", fmtTime(a.scored_ts)));
  tr.append(el("td", a.tier, "tier-cell tier-" + a.tier));
  tr.append(el("td", fmtNum(a.score)));
  const acct = el("td");
  const link = el("a", a.account_id);
  link.href = accountHref(a.account_id);
  link.addEventListener("click", (ev) => ev.stopPropagation());
  acct.append(link);
  tr.append(acct);
  tr.append(el("td", a.tx_id, "tx-id"));
  tr.append(el("td", a.amount === undefined || a.amount === null ? "" : fmtNum(a.amount, 2)));
  tr.append(el("td", a.counterparty_id || a.merchant_category || "", "counterparty"));
  tr.append(el("td", reasonText(a.top_reason)));
  tr.firstChild.textContent = fmtTime(a.scored_ts).slice(11);
  for (const td of tr.children) td.title = td.textContent;
  tr.firstChild.title = fmtTime(a.scored_ts) + " UTC";
  tr.addEventListener("click", () => select(a.alert_id));
  return tr;
}

// The badge says "live" only while the stream is connected and the workers keep up.
function renderConn() {
  const state = workerStatus ? workerStatus.state : "live";
  if (!connected) {
    $("conn").textContent = "reconnecting…";
    $("conn").className = "conn";
  } else if (state === "behind" || state === "stalled") {
    $("conn").textContent = workerStatus.text;
    $("conn").className = "conn " + state;
  } else {
    $("conn").textContent = "live";
    $("conn").className = "conn live";
  }
}

function renderStats(s) {
  workerStatus = s.status || null;
  renderConn();
  for (const tier of ["HIGH", "MEDIUM", "LOW"]) {
    $("count-" + tier).textContent = String((s.tiers && s.tiers[tier]) || 0);
  }
  $("tx-rate").textContent = s.tx_per_s === null ? "–" : String(s.tx_per_s);
  $("latency").textContent =
    s.latency_ms_p50 === null ? "–" : fmtMs(s.latency_ms_p50) + " / " + fmtMs(s.latency_ms_p95);
  $("alerts-minute").textContent = String(s.alerts_last_minute);
}

function fmtMs(ms) {
  // Replayed or simulated history can be days old at scoring time.
  if (ms >= 86400000) return (ms / 86400000).toFixed(1) + " d";
  return ms >= 10000 ? (ms / 1000).toFixed(0) + " s" : Math.round(ms) + " ms";
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => {
    connected = true;
    renderConn();
  });
  source.addEventListener("error", () => {
    connected = false;
    renderConn();
  });
  source.addEventListener("snapshot", (ev) => {
    const doc = JSON.parse(ev.data);
    alerts.clear();
    order = [];
    for (const a of doc.alerts.slice().reverse()) addAlert(a, false);
    renderList();
    renderStats(doc.stats);
  });
  source.addEventListener("alert", (ev) => {
    addAlert(JSON.parse(ev.data), true);
    renderList();
  });
  source.addEventListener("stats", (ev) => renderStats(JSON.parse(ev.data)));
}

// ---- detail ----------------------------------------------------------------------

async function select(id) {
  selected = id;
  history.replaceState(null, "", "#alert=" + encodeURIComponent(id));
  for (const tr of $("alert-rows").children) {
    tr.classList.toggle("selected", tr.dataset.alertId === id);
  }
  const resp = await fetch("/api/alerts/" + encodeURIComponent(id));
  const doc = await resp.json();
  if (!resp.ok) {
    showDetailError(doc.error || "cannot load the alert");
    return;
  }
  renderDetail(doc);
}

function showDetailError(message) {
  $("detail").hidden = false;
  $("d-id").textContent = "";
  $("label-status").textContent = message;
  $("label-status").className = "label-status error";
}

function kvRows(body, entries) {
  const rows = entries.map(([k, v]) => {
    const tr = el("tr");
    tr.append(el("td", k));
    tr.append(el("td", typeof v === "object" && v !== null ? JSON.stringify(v) : fmtNum(v)));
    return tr;
  });
  body.replaceChildren(...rows);
}

function renderDetail(a) {
  selectedAlert = a;
  $("detail").hidden = false;
  $("d-id").textContent = a.alert_id;
  const tier = $("d-tier");
  tier.textContent = a.tier;
  tier.className = "badge tier-" + a.tier;
  $("d-score").textContent = fmtNum(a.score, 4);
  $("d-model").textContent = a.model_version || "";
  const acct = $("d-account");
  acct.textContent = a.account_id;
  acct.href = accountHref(a.account_id);
  $("label-status").textContent = "";
  $("label-status").className = "label-status";

  const reasons = Array.isArray(a.reasons) ? a.reasons : [];
  const max = Math.max(1e-9, ...reasons.map((r) => Math.abs(r.contribution || 0)));
  const bars = [];
  for (const r of reasons) {
    const label = el("span", r.feature + " = " + fmtNum(r.value), "bar-label reason");
    label.title = label.textContent;
    const track = el("div", null, "bar-track");
    const bar = el("div", null, "bar " + (r.contribution >= 0 ? "pos" : "neg"));
    bar.style.width = ((Math.abs(r.contribution || 0) / max) * 50).toFixed(1) + "%";
    track.append(bar);
    const sign = r.contribution >= 0 ? "+" : "";
    bars.push(label, track, el("span", sign + fmtNum(r.contribution, 3), "bar-value"));
  }
  if (bars.length === 0) bars.push(el("span", "no reasons"));
  $("d-reasons").replaceChildren(...bars);

  const rules = (Array.isArray(a.rules) ? a.rules : []).map((r) =>
    el("li", r.rule_id + " (" + r.tier + "): " + r.explanation, "rule"),
  );
  if (rules.length === 0) rules.push(el("li", "no rule hits"));
  $("d-rules").replaceChildren(...rules);

  const tx = a.transaction && typeof a.transaction === "object" ? a.transaction : {};
  kvRows($("d-tx"), Object.entries(tx));
  kvRows($("d-features"), Object.entries(a.features || {}));
}

async function sendLabel(verdict) {
  const status = $("label-status");
  if (!selectedAlert) return;
  const token = $("token").value.trim();
  if (!token) {
    status.textContent = "Enter the labelling token above (the worker's VIGIL_WEB_TOKEN).";
    status.className = "label-status error";
    return;
  }
  status.textContent = "sending…";
  status.className = "label-status";
  const resp = await fetch("/api/labels", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
    body: JSON.stringify({ tx_id: selectedAlert.tx_id, label: verdict }),
  });
  const doc = await resp.json();
  if (resp.ok) {
    status.textContent =
      "labelled " + doc.label.label + " (" + doc.topic + " partition " + doc.partition + ")";
    status.className = "label-status done";
  } else {
    status.textContent = doc.error || "labelling failed (" + resp.status + ")";
    status.className = "label-status error";
  }
}

function fromHash() {
  const m = /^#alert=(.+)$/.exec(location.hash);
  if (m) select(decodeURIComponent(m[1]));
}

document.addEventListener("DOMContentLoaded", () => {
  const token = $("token");
  token.value = sessionStorage.getItem("vigil-token") || "";
  token.addEventListener("input", () => sessionStorage.setItem("vigil-token", token.value));
  $("tier-filter").addEventListener("change", renderList);
  $("label-fraud").addEventListener("click", () => sendLabel("fraud"));
  $("label-legit").addEventListener("click", () => sendLabel("legit"));
  connect();
  fromHash();
});
