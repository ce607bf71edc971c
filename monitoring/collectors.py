"""Timers that refresh the gauges nothing on the hot path can set: drift and consumer lag."""

from __future__ import annotations

import logging
from typing import Any

from app.internals import faust_consumer
from app.kafka import tansu_compat
from app.kafka.instance import app
from monitoring.drift import Reference, ScoreWindow, reference_from_artifact, window_psi
from monitoring.lag import consumer_lag

log = logging.getLogger(__name__)

DRIFT_INTERVAL_S = 10.0
LAG_INTERVAL_S = 5.0

_references: dict[str, Reference | None] = {}
_window_version: list[str] = []  # the model version the score window holds scores of


def _served_reference() -> Reference | None:
    """Return the validation score histogram of the model being served (cached by version).

    After a model swap the window restarts, so the new model's scores are compared with the
    new model's own validation scores, not mixed with the old model's.
    """
    model = app.scoring_model
    scorer = getattr(model, "scorer", None)
    artifact = getattr(scorer, "artifact", None)
    if artifact is None:
        return None
    version = str(artifact.version)
    if _window_version != [version]:
        if _window_version:
            app.metrics.recent_scores = ScoreWindow(app.metrics.recent_scores.size)
        _window_version[:] = [version]
    if version not in _references:
        _references[version] = reference_from_artifact(artifact.score_distribution)
        if _references[version] is None:
            log.warning(
                "model has no score distribution; drift is not computed", extra={"version": version}
            )
    return _references[version]


@app.timer(interval=DRIFT_INTERVAL_S)  # type: ignore[untyped-decorator]  # faust leaves it untyped
async def report_score_drift() -> None:
    """Export the PSI of the recent scores against the served model's validation scores."""
    metrics = app.metrics
    reference = _served_reference()
    window = metrics.recent_scores
    metrics.score_drift_window.set(len(window))
    if reference is None:
        return
    value = window_psi(window, reference)
    if value is not None:
        metrics.score_drift.set(value)


@app.timer(interval=LAG_INTERVAL_S)  # type: ignore[untyped-decorator]
async def report_consumer_lag() -> None:
    """Export end offset minus committed offset of each assigned source partition."""
    s = app.settings
    consumer: Any = app.consumer
    # Every agent's input, so a stuck labels or fan-in agent shows too (not the changelogs).
    sources = {
        s.topic_transactions,
        s.topic_repartition,
        s.topic_by_counterparty,
        s.topic_labels,
        f"{s.topic_labels}.by-counterparty",
    }
    try:
        tps = [tp for tp in consumer.assignment() if tp.topic in sources]
    except Exception:  # the consumer thread is not started yet, or is restarting
        return
    if not tps:
        app.metrics.set_consumer_lag({})
        return
    try:
        if app.tansu.use(tansu_compat.LAG_FROM_FETCH):
            # tansu under-reports ListOffsets; the high watermark of the last fetch is right.
            ends = {tp: consumer.highwater(tp) for tp in tps}
        else:
            ends = dict(await consumer.highwaters(*tps))
        committed_all = faust_consumer.committed_offsets(consumer)
        committed = {tp: committed_all.get(tp) for tp in tps}
        unset = [tp for tp, offset in committed.items() if offset is None]
        earliest = dict(await consumer.earliest_offsets(*unset)) if unset else {}
    except Exception as exc:  # a rebalance or a broker hiccup: keep the last values
        log.debug("consumer lag not refreshed: %r", exc)
        return
    lag = consumer_lag(ends, committed, earliest)
    app.metrics.set_consumer_lag({(tp.topic, tp.partition): n for tp, n in lag.items()})
