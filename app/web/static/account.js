// Vigil account page: the velocity state comes from the worker that owns the account's
// partition (/api/accounts/{id} is routed by Faust's table_route). textContent only.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function fmtTime(ms) {
  return typeof ms === "number" ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "–";
}

function kv(k, v) {
  const tr = el("tr");
  tr.append(el("td", k), el("td", v));
  return tr;
}

function renderState(s) {
  const rows = [
    kv("transactions counted", fmt(s.tx_count)),
    kv("first event", fmtTime(s.first_ts)),
    kv("latest event", fmtTime(s.last_ts)),
    kv("mean amount", fmt(s.mean_amount)),
    kv("std amount", fmt(s.std_amount)),
    kv("counterparties remembered", fmt(s.counterparties_remembered)),
    kv("devices remembered", fmt(s.devices_remembered)),
  ];
  for (const [k, v] of Object.entries(s.windows || {})) rows.push(kv(k, fmt(v)));
  $("state").replaceChildren(...rows);
}

function renderAlerts(list) {
  const rows = list.map((a) => {
    const tr = el("tr");
    const link = el("a", a.tx_id);
    link.href = "/#alert=" + encodeURIComponent(a.alert_id);
    const txCell = el("td");
    txCell.append(link);
    const r = a.top_reason;
    tr.append(
      el("td", fmtTime(a.scored_ts)),
      el("td", a.tier, "tier-cell tier-" + a.tier),
      el("td", fmt(a.score)),
      txCell,
      el("td", fmt(a.amount)),
      el("td", r ? r.feature + " (" + fmt(r.contribution) + ")" : ""),
    );
    return tr;
  });
  if (rows.length === 0) {
    const tr = el("tr");
    tr.append(el("td", "no recent alerts"));
    rows.push(tr);
  }
  $("account-alerts").replaceChildren(...rows);
}

async function load() {
  const id = document.body.dataset.account;
  const status = $("status");
  const resp = await fetch("/api/accounts/" + encodeURIComponent(id));
  const doc = await resp.json();
  if (!resp.ok) {
    status.textContent = doc.error || "cannot load the account (" + resp.status + ")";
    status.className = "status error";
    return;
  }
  status.textContent = doc.state
    ? "state from partition " + doc.partition
    : "no velocity state on the owning worker yet";
  status.className = "status";
  if (doc.state) renderState(doc.state);
  renderAlerts(doc.alerts || []);
}

document.addEventListener("DOMContentLoaded", load);
