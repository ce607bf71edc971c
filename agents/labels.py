"""Delayed labels in, per-counterparty risk out.

Labels are keyed by ``tx_id``; the risk table is keyed by counterparty. The first agent
re-keys each label by its counterparty so that the second, the table's only writer, sees
every label of a counterparty in one partition (no lost updates between workers).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from agents.pipeline import dead_letter_headers, fit_dead_letter
from app.kafka.instance import app
from models.counterparty_risk import CounterpartyRisk, apply_label
from models.labels import LabelError, check_label_time, parse_label
from tables.counterparty_risk import CounterpartyRiskStore, counterparty_risk_table

log = logging.getLogger(__name__)
settings = app.settings


async def _dead_letter(message: Any, error: str, field: str | None, reason: str) -> None:
    """Send a label that cannot be used to the dead-letter topic (cut to the size limit)."""
    deadletter = app.topic(settings.topic_deadletter, partitions=settings.partitions)
    headers = dead_letter_headers(message, error, field)
    value = fit_dead_letter(message.value, headers, settings.max_message_bytes)
    app.metrics.deadletters.labels(reason).inc()
    await deadletter.send(
        value=value, partition=message.partition % settings.partitions, headers=headers
    )


@app.agent(app.labels_topic, name="route-labels")
async def route_labels(stream: Any) -> None:
    """Validate labels and re-key those that name a counterparty.

    A label that is invalid, or dated more than a day ahead (it would push a counterparty's
    real labels out of its 30-day window), goes to the dead-letter topic.
    """
    by_counterparty = app.labels_by_counterparty_topic
    async for event in stream.events():
        message = event.message
        try:
            label = parse_label(message.value)
            check_label_time(label, int(time.time() * 1000))
        except LabelError as err:
            await _dead_letter(message, str(err), err.field, f"label.{err.field}")
            continue
        except Exception as exc:  # confined to this label: validation should have said
            log.error("label dead-lettered, parse failed: %r (offset %s)", exc, message.offset)
            error = f"stage=parse error={type(exc).__name__}: {exc}"
            await _dead_letter(message, error, None, "label.stage.parse")
            continue
        app.metrics.labels.labels(label.label).inc()
        if label.counterparty_id is not None:
            await by_counterparty.send(key=label.counterparty_id.encode(), value=message.value)


@app.agent(app.labels_by_counterparty_topic, name="counterparty-risk")
async def update_counterparty_risk(stream: Any) -> None:
    """Count each label in its counterparty's risk state (idempotent on replays).

    A label that cannot be counted (only route_labels writes this topic, so a bug or a
    corrupt stored state) is dead-lettered; the agent goes on with the next one.
    """
    store = CounterpartyRiskStore(counterparty_risk_table)
    async for event in stream.events():
        message = event.message
        try:
            label = parse_label(message.value)  # validated by route_labels
            if label.counterparty_id is None:
                raise LabelError("counterparty_id", "is required on the re-keyed topic")
            risk: CounterpartyRisk | None = store.get(label.counterparty_id)
            risk, changed = apply_label(risk, label.tx_id, label.is_fraud, label.ts_ms)
            value = risk.to_bytes()
        except Exception as exc:  # confined to this label
            log.error("label dead-lettered, counting failed: %r (offset %s)", exc, message.offset)
            error = f"stage=count error={type(exc).__name__}: {exc}"
            await _dead_letter(message, error, None, "label.stage.count")
            continue
        if changed:
            counterparty_risk_table[label.counterparty_id.encode()] = value
