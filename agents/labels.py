"""Delayed labels in, per-counterparty risk out.

Labels are keyed by ``tx_id``; the risk table is keyed by counterparty. The first agent
re-keys each label by its counterparty so that the second, the table's only writer, sees
every label of a counterparty in one partition (no lost updates between workers).
"""

from __future__ import annotations

import logging
from typing import Any

from agents.pipeline import dead_letter_headers
from app import app
from models.counterparty_risk import CounterpartyRisk, apply_label
from models.labels import LabelError, parse_label
from tables.counterparty_risk import CounterpartyRiskStore, counterparty_risk_table

log = logging.getLogger(__name__)
settings = app.settings


@app.agent(app.labels_topic, name="route-labels")
async def route_labels(stream: Any) -> None:
    """Validate labels and re-key those that name a counterparty."""
    deadletter = app.topic(settings.topic_deadletter, partitions=settings.partitions)
    by_counterparty = app.labels_by_counterparty_topic
    async for event in stream.events():
        message = event.message
        try:
            label = parse_label(message.value)
        except LabelError as err:
            app.metrics.deadletters.labels(f"label.{err.field}").inc()
            await deadletter.send(
                value=message.value,
                partition=message.partition % settings.partitions,
                headers=dead_letter_headers(message, str(err), err.field),
            )
            continue
        app.metrics.labels.labels(label.label).inc()
        if label.counterparty_id is not None:
            await by_counterparty.send(key=label.counterparty_id.encode(), value=message.value)


@app.agent(app.labels_by_counterparty_topic, name="counterparty-risk")
async def update_counterparty_risk(stream: Any) -> None:
    """Count each label in its counterparty's risk state (idempotent on replays)."""
    store = CounterpartyRiskStore(counterparty_risk_table)
    async for event in stream.events():
        label = parse_label(event.message.value)  # validated by route_labels
        assert label.counterparty_id is not None
        risk: CounterpartyRisk | None = store.get(label.counterparty_id)
        risk, changed = apply_label(risk, label.tx_id, label.is_fraud, label.ts_ms)
        if changed:
            counterparty_risk_table[label.counterparty_id.encode()] = risk.to_bytes()
