"""HTML report of a training validation period or a backtest: figures, tables and plots.

One self-contained file with inline SVG (no plotting library, no scripts, nothing fetched),
so it opens anywhere and can be attached to a model-approval ticket as it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from models.offline.evaluation import roc_curve
from models.tiers import ALERTED_TIERS

W, H, PAD = 420, 260, 40
TIER_COLOURS = {"HIGH": "#c0392b", "MEDIUM": "#e67e22", "LOW": "#f1c40f"}
MAX_POINTS = 400


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _thin(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    if x.size <= MAX_POINTS:
        return x, y
    idx = np.unique(np.linspace(0, x.size - 1, MAX_POINTS).astype(int))
    return x[idx], y[idx]


def _frame(title: str, x_label: str, y_label: str, body: str) -> str:
    return (
        f'<figure><svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">'
        f"<title>{_e(title)}</title>"
        f'<rect x="{PAD}" y="10" width="{W - PAD - 10}" height="{H - PAD - 10}" '
        'fill="none" stroke="#999"/>'
        f"{body}"
        f'<text x="{W / 2}" y="{H - 5}" text-anchor="middle">{_e(x_label)}</text>'
        f'<text x="12" y="{H / 2}" transform="rotate(-90 12 {H / 2})" '
        f'text-anchor="middle">{_e(y_label)}</text>'
        f"</svg><figcaption>{_e(title)}</figcaption></figure>"
    )


def _xy(x: float, y: float) -> tuple[float, float]:
    """Map unit coordinates to the plot area."""
    return PAD + x * (W - PAD - 10), 10 + (1.0 - y) * (H - PAD - 10)


def line_plot(
    title: str, x_label: str, y_label: str, series: Sequence[tuple[str, Any, Any, str]]
) -> str:
    """Plot ``(name, xs, ys, colour)`` series on unit axes."""
    body = []
    for n, (name, xs, ys, colour) in enumerate(series):
        xs_t, ys_t = _thin(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
        points = " ".join(
            "{:.1f},{:.1f}".format(*_xy(float(a), float(b)))
            for a, b in zip(xs_t, ys_t, strict=True)
            if math.isfinite(a) and math.isfinite(b)
        )
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        body.append(
            f'<text x="{W - 15}" y="{28 + 14 * n}" text-anchor="end" fill="{colour}">'
            f"{_e(name)}</text>"
        )
    return _frame(title, x_label, y_label, "".join(body))


def bar_plot(
    title: str,
    x_label: str,
    y_label: str,
    categories: Sequence[str],
    stacks: Sequence[tuple[str, Sequence[float], str]],
    log_scale: bool = False,
) -> str:
    """Stacked bars: one bar per category, one ``(name, values, colour)`` layer per stack."""
    totals = [sum(s[1][i] for s in stacks) for i in range(len(categories))]
    top = max(totals, default=0.0) or 1.0

    def scale(v: float) -> float:
        if log_scale:
            return math.log10(1.0 + v) / math.log10(1.0 + top)
        return v / top

    body = []
    n = max(len(categories), 1)
    width = (W - PAD - 10) / n
    for i, category in enumerate(categories):
        base = 0.0
        for name, values, colour in stacks:
            v = float(values[i])
            if v <= 0:
                continue
            y0, y1 = scale(base), scale(base + v)
            x, top_px = _xy(i / n, y1)
            _, bottom_px = _xy(i / n, y0)
            body.append(
                f'<rect x="{x + 1:.1f}" y="{top_px:.1f}" width="{max(width - 2, 1):.1f}" '
                f'height="{max(bottom_px - top_px, 0.5):.1f}" fill="{colour}">'
                f"<title>{_e(category)} {_e(name)}: {_fmt(v)}</title></rect>"
            )
            base += v
        if n <= 16 or i % max(1, n // 8) == 0:
            x, _ = _xy((i + 0.5) / n, 0)
            body.append(
                f'<text x="{x:.1f}" y="{H - PAD + 14}" text-anchor="middle" font-size="9">'
                f"{_e(category)}</text>"
            )
    for k, (name, _, colour) in enumerate(stacks):
        body.append(
            f'<text x="{W - 15}" y="{28 + 14 * k}" text-anchor="end" fill="{colour}">'
            f"{_e(name)}</text>"
        )
    body.append(f'<text x="{PAD + 4}" y="24" font-size="10">max {_fmt(top)}</text>')
    return _frame(title, x_label, y_label + (" (log)" if log_scale else ""), "".join(body))


def hbar_plot(title: str, items: Sequence[tuple[str, float]]) -> str:
    """Horizontal bars, largest first (feature importance)."""
    items = sorted(items, key=lambda kv: -kv[1])[:15]
    top = max((v for _, v in items), default=1.0) or 1.0
    rows = max(len(items), 1)
    height = (H - PAD - 10) / rows
    body = []
    for i, (name, value) in enumerate(items):
        y = 10 + i * height
        width = (W - 170) * value / top
        body.append(
            f'<rect x="160" y="{y + 1:.1f}" width="{width:.1f}" height="{max(height - 2, 1):.1f}" '
            f'fill="#2c7fb8"><title>{_e(name)}: {_fmt(value)}</title></rect>'
            f'<text x="155" y="{y + height * 0.7:.1f}" text-anchor="end" font-size="10">'
            f"{_e(name)}</text>"
        )
    return (
        f'<figure><svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">'
        f"<title>{_e(title)}</title>{''.join(body)}</svg>"
        f"<figcaption>{_e(title)}</figcaption></figure>"
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def plots(
    labels: npt.NDArray[Any],
    scores: npt.NDArray[Any],
    figures: Mapping[str, Any],
    importance: Mapping[str, float],
) -> list[str]:
    """Return the report's SVG figures."""
    from models.offline.training import pr_curve

    y = np.asarray(labels, dtype=np.int8)
    s = np.asarray(scores, dtype=np.float64)
    out: list[str] = []
    if y.size and 0 < y.sum() < y.size:
        _, precision, recall = pr_curve(y, s)
        out.append(
            line_plot(
                "Precision / recall",
                "recall",
                "precision",
                [("model", recall, precision, "#2c7fb8")],
            )
        )
        fpr, tpr = roc_curve(y, s)
        out.append(
            line_plot(
                "ROC",
                "false positive rate",
                "true positive rate",
                [("model", fpr, tpr, "#2c7fb8"), ("chance", [0, 1], [0, 1], "#bbb")],
            )
        )
    edges = np.linspace(0.0, 1.0, 21)
    legit, _ = np.histogram(s[y == 0], bins=edges)
    fraud, _ = np.histogram(s[y == 1], bins=edges)
    out.append(
        bar_plot(
            "Score histogram by label",
            "score",
            "transactions",
            [f"{edges[i]:.2f}" for i in range(20)],
            [("legit", legit.tolist(), "#7fb3d5"), ("fraud", fraud.tolist(), "#c0392b")],
            log_scale=True,
        )
    )
    if importance:
        out.append(hbar_plot("Feature importance (total gain)", list(importance.items())))
    per_day = figures.get("alerts_per_day", [])
    out.append(
        bar_plot(
            "Alert volume by day",
            "day",
            "alerts",
            [str(r["day"])[5:] for r in per_day],
            [(t, [r[t] for r in per_day], TIER_COLOURS[t]) for t in ALERTED_TIERS],
        )
    )
    return out


#: Hyperparameter columns of the tuning table: (key in the trial's params, heading).
TUNING_COLUMNS = (
    ("max_depth", "depth"),
    ("eta", "eta"),
    ("num_boost_round", "max rounds"),
    ("min_child_weight", "min child weight"),
    ("subsample", "subsample"),
    ("colsample_bytree", "colsample"),
    ("class_weight_power", "class weight power"),
)


def tuning_section(tuning: Mapping[str, Any]) -> list[str]:
    """Return the HTML of a hyperparameter search: set-up, choice and every trial."""
    chosen = tuning.get("chosen_trial")
    setup = [
        ("objective", tuning.get("objective")),
        ("chosen trial", None if chosen is None else chosen + 1),
        ("chosen parameters", ", ".join(f"{k} {v}" for k, v in tuning.get("chosen", {}).items())),
        ("folds", tuning.get("folds")),
        ("gap before each fold's validation (days)", tuning.get("gap_days")),
        ("seed", tuning.get("seed")),
        ("trials run", len(tuning.get("trials", []))),
        ("stopped by the time budget", str(tuning.get("stopped_by_budget"))),
        ("seconds", tuning.get("seconds")),
    ]
    rows = []
    for t in tuning.get("trials", []):
        params = t.get("params", {})
        rows.append(
            [
                ("* " if t.get("index") == chosen else "") + str(t.get("index", 0) + 1),
                *(params.get(key) for key, _ in TUNING_COLUMNS),
                t.get("average_precision"),
                t.get("card_precision"),
                t.get("objective"),
                " / ".join(_fmt(f.get("objective")) for f in t.get("folds", [])),
                " / ".join(_fmt(f.get("rounds")) for f in t.get("folds", [])),
                t.get("seconds"),
            ]
        )
    headers = [
        "trial",
        *(h for _, h in TUNING_COLUMNS),
        "AP (mean)",
        "card precision@k (mean)",
        "objective",
        "fold objectives",
        "fold rounds",
        "seconds",
    ]
    return [
        "<h2>Tuning</h2>",
        _table(["search", "value"], setup),
        _table(headers, rows),
    ]


def render_html(
    title: str,
    figures: Mapping[str, Any],
    svgs: Sequence[str],
    context: Mapping[str, Any],
) -> str:
    """Return the whole report page."""
    summary = [
        ("transactions", figures.get("transactions")),
        ("frauds", figures.get("frauds")),
        ("AUC ROC", figures.get("auc_roc")),
        ("average precision", figures.get("average_precision")),
        (
            f"card precision@{figures.get('card_precision_at_k', {}).get('k', '')} (daily mean)",
            figures.get("card_precision_at_k", {}).get("mean"),
        ),
        *context.items(),
    ]
    tiers = figures.get("tiers", {})
    tier_rows = [
        [
            tier,
            t.get("transactions"),
            t.get("frauds"),
            t.get("precision"),
            t.get("recall"),
            t.get("precision_at_or_above"),
            t.get("recall_at_or_above"),
        ]
        for tier, t in tiers.items()
    ]
    cpk_rows = [
        [str(np.datetime64(d["day"], "D")), d["accounts"], d["fraud_accounts"], d["precision"]]
        for d in figures.get("card_precision_at_k", {}).get("per_day", [])
    ]
    rule_rows = [
        [r, v.get("hits"), v.get("frauds"), v.get("precision"), v.get("added_alerts")]
        for r, v in figures.get("rules", {}).items()
    ]
    pattern_rows = [
        [p, v.get("frauds"), *(v.get(t) for t in ALERTED_TIERS), v.get("recall")]
        for p, v in figures.get("patterns", {}).items()
    ]
    day_rows = [
        [r["day"], r["transactions"], *(r[t] for t in ALERTED_TIERS)]
        for r in figures.get("alerts_per_day", [])
    ]
    sections = [
        f"<h1>{_e(title)}</h1>",
        _table(["figure", "value"], summary),
        "<h2>Plots</h2>",
        '<div class="plots">' + "".join(svgs) + "</div>",
        "<h2>Tiers</h2>",
        _table(
            ["tier", "transactions", "frauds", "precision", "recall", "precision ≥", "recall ≥"],
            tier_rows,
        ),
    ]
    if pattern_rows:
        sections += [
            "<h2>Recall per fraud pattern</h2>",
            _table(["pattern", "frauds", *ALERTED_TIERS, "recall (alerted)"], pattern_rows),
        ]
    if rule_rows:
        sections += [
            "<h2>AML rules</h2>",
            _table(["rule", "hits", "frauds", "precision", "alerts beyond the model"], rule_rows),
        ]
    if figures.get("tuning"):
        sections += tuning_section(figures["tuning"])
    sections += [
        "<h2>Alerts per day</h2>",
        _table(["day", "transactions", *ALERTED_TIERS], day_rows),
        "<h2>Card precision per day</h2>",
        _table(["day", "accounts", "fraud accounts", "precision@k"], cpk_rows),
    ]
    style = (
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;"
        "gap:1em}figure{margin:0}svg text{font-size:11px}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{style}</style></head><body>"
        + "".join(sections)
        + "</body></html>"
    )


def write_report(
    out_dir: Path,
    name: str,
    title: str,
    labels: npt.NDArray[Any],
    scores: npt.NDArray[Any],
    figures: Mapping[str, Any],
    importance: Mapping[str, float],
    context: Mapping[str, Any],
) -> tuple[Path, Path]:
    """Write ``<name>.json`` (figures and context) and ``<name>.html``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    html_path = out_dir / f"{name}.html"
    doc = {"title": title, "context": dict(context), "figures": dict(figures)}
    json_path.write_bytes(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    svgs = plots(labels, scores, figures, importance)
    html_path.write_text(render_html(title, figures, svgs, context), encoding="utf-8")
    return json_path, html_path
