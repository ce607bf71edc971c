"""A record that fails in any step of the pipeline is dead-lettered alone; the batch goes on.

Faults are injected into one record's step (risk lookup, features, explanation,
serialisation) with a real model, the real AML rules, an in-memory store and a collecting
sender; each test checks that the fault was hit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import models.decision as decision_module
from agents.pipeline import (
    MAX_KEY_HEADER_BYTES,
    RECORD_FRAMING_BYTES,
    TransactionPipeline,
    dead_letter_headers,
    fit_dead_letter,
)
from app.serving import ModelSet
from app.settings import Settings
from models.counterparty_risk import CounterpartyRisk
from models.features import FEATURE_NAMES, update_account
from models.records import scored_record
from models.transaction import Transaction
from tests.poison import ALERTED, tx_json
from tests.unit.pipeline_support import CollectingSender, Message, make_pipeline

S = Settings()


def run(pipeline: TransactionPipeline, values: list[bytes], topic: str | None = None) -> None:
    """Process ``values`` as one batch (on the re-keyed topic unless ``topic`` is given)."""
    messages = [
        Message(topic or S.topic_repartition, 1, i, None, value) for i, value in enumerate(values)
    ]
    asyncio.run(pipeline.process(messages))


def scored_ids(sender: CollectingSender) -> list[str]:
    return [orjson.loads(r.value or b"")["tx_id"] for r in sender.to(S.topic_scored)]


def alerted_ids(sender: CollectingSender) -> list[str]:
    topics = set(S.alert_topics().values())
    return [orjson.loads(r.value or b"")["tx_id"] for r in sender.sent if r.topic in topics]


def dead_letters(sender: CollectingSender) -> list[dict[str, bytes]]:
    return [dict(r.headers) for r in sender.to(S.topic_deadletter)]


def deadletter_count(pipeline: TransactionPipeline, reason: str) -> float | None:
    registry = pipeline.metrics.registry
    return registry.get_sample_value("vigil_deadletters_total", {"reason": reason})


class ExplodingRisk:
    """A counterparty-risk source whose state for one counterparty cannot be read."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.asked: list[str] = []

    def get(self, counterparty_id: str, partition: int | None = None) -> CounterpartyRisk | None:
        self.asked.append(counterparty_id)
        if counterparty_id == self.bad:
            raise RuntimeError("corrupt risk state")
        return None


class WatchedScorer:
    """Wrap a scorer: remember every matrix it is given; fail ``explain`` on chosen rows."""

    def __init__(self, scorer: Any, explain_fails: Callable[[np.ndarray], bool]) -> None:
        self.scorer = scorer
        self.explain_fails = explain_fails
        self.seen: list[np.ndarray] = []
        self.explain_failures = 0

    def score(self, rows: np.ndarray) -> np.ndarray:
        self.seen.append(rows.copy())
        return np.asarray(self.scorer.score(rows))

    def explain(self, rows: np.ndarray, top_k: int = 3, values: Any = None) -> Any:
        self.seen.append(rows.copy())
        if self.explain_fails(rows):
            self.explain_failures += 1
            raise ValueError("cannot explain this row")
        return self.scorer.explain(rows, top_k, values)


def watch(pipeline: TransactionPipeline, fails: Callable[[np.ndarray], bool]) -> WatchedScorer:
    """Serve the pipeline's model through a :class:`WatchedScorer`."""
    champion = pipeline.models.current.champion
    watched = WatchedScorer(champion.scorer, fails)
    champion.scorer = watched  # type: ignore[assignment]
    return watched


def test_a_failing_risk_lookup_dead_letters_that_record_only(model_path: Path) -> None:
    pipeline, store, sender = make_pipeline(model_path, S)
    risk = ExplodingRisk("cp-boom")
    pipeline.risk = risk
    run(
        pipeline,
        [
            tx_json("ok-1", "acc-1", counterparty_id="cp-1"),
            tx_json("boom", "acc-2", counterparty_id="cp-boom"),
            tx_json("ok-2", "acc-1", counterparty_id="cp-1"),
        ],
    )
    assert "cp-boom" in risk.asked  # the fault was hit
    assert scored_ids(sender) == ["ok-1", "ok-2"]
    (headers,) = dead_letters(sender)
    assert headers["vigil.error"] == b"stage=featurise error=RuntimeError: corrupt risk state"
    assert "vigil.error.field" not in headers
    assert headers["vigil.source.offset"] == b"1"
    assert deadletter_count(pipeline, "stage.featurise") == 1
    assert [key for _, key in store.data] == [b"acc-1"]  # acc-2's state was not written


def test_an_infinite_feature_never_reaches_the_model(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, _, sender = make_pipeline(model_path, S)
    scorer = watch(pipeline, lambda rows: False)
    real = update_account
    poisoned: list[str] = []

    def update(state: Any, tx: Transaction, cp_risk: Any = None, pos: Any = None) -> Any:
        features, state = real(state, tx, cp_risk, pos)
        if tx.tx_id == "inf":
            features[FEATURE_NAMES.index("sum_30d")] = 1e39  # beyond float32
            poisoned.append(tx.tx_id)
        return features, state

    monkeypatch.setattr(decision_module, "update_account", update)
    run(
        pipeline,
        [tx_json("inf", "acc-1", **ALERTED), tx_json("alert", "acc-2", **ALERTED)],
    )
    assert poisoned == ["inf"]
    assert scorer.seen and all(not np.isinf(m).any() for m in scorer.seen)
    assert scored_ids(sender) == ["alert"]
    assert alerted_ids(sender) == ["alert"]
    (headers,) = dead_letters(sender)
    assert headers["vigil.error"] == (
        b"stage=featurise error=NonFiniteFeatureError: infinite as float32: sum_30d"
    )


def test_a_row_that_cannot_be_explained_is_dead_lettered_and_the_others_alert(
    model_path: Path,
) -> None:
    pipeline, _, sender = make_pipeline(model_path, S)
    scorer = watch(pipeline, lambda rows: bool((rows[:, 0] == 26_000).any()))
    run(
        pipeline,
        [
            tx_json("a1", "acc-1", **ALERTED),
            tx_json("bad", "acc-2", **{**ALERTED, "amount": 26_000}),
            tx_json("a2", "acc-3", **ALERTED),
        ],
    )
    assert scorer.explain_failures >= 2  # the batch, then the row alone
    assert scored_ids(sender) == ["a1", "a2"]
    assert alerted_ids(sender) == ["a1", "a2"]
    (headers,) = dead_letters(sender)
    assert headers["vigil.error"] == b"stage=explain error=ValueError: cannot explain this row"
    forwarded = [
        orjson.loads(r.value or b"")["tx"]["tx_id"] for r in sender.to(S.topic_by_counterparty)
    ]
    assert forwarded == ["a1", "a2"]


def test_a_model_that_fails_every_row_stops_the_batch(model_path: Path) -> None:
    pipeline, _, _ = make_pipeline(model_path, S)
    scorer = watch(pipeline, lambda rows: True)
    with pytest.raises(ValueError, match="cannot explain"):
        run(pipeline, [tx_json("a1", "acc-1", **ALERTED), tx_json("a2", "acc-2", **ALERTED)])
    assert scorer.explain_failures == 3  # the batch and each row: not one record's fault


def test_a_record_that_fails_to_serialise_keeps_the_other_rows_aligned(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, _, sender = make_pipeline(model_path, S)
    real = scored_record
    hit: list[str] = []

    def failing_record(tx: Transaction, *args: Any) -> bytes:
        if tx.tx_id == "ser":
            hit.append(tx.tx_id)
            raise TypeError("cannot serialise")
        return real(tx, *args)

    monkeypatch.setattr(decision_module, "scored_record", failing_record)
    run(
        pipeline,
        [
            tx_json("ser", "acc-1", **ALERTED),
            tx_json("plain", "acc-2", 12.0),
            tx_json("alert", "acc-3", **ALERTED),
        ],
    )
    assert hit == ["ser"]
    assert scored_ids(sender) == ["plain", "alert"]
    topics = set(S.alert_topics().values())
    alerts = {
        doc["tx_id"]: doc
        for doc in (orjson.loads(r.value or b"") for r in sender.sent if r.topic in topics)
    }
    # Whether the model alerts on "plain" is the small test model's business; the failed
    # row's alert must be gone, and the next alerted row must carry its own decision.
    assert "ser" not in alerts
    alert = alerts["alert"]
    assert [r["rule_id"] for r in alert["rules"]] == ["round_amount"]  # its own decision
    forwarded = [
        orjson.loads(r.value or b"")["tx"]["tx_id"] for r in sender.to(S.topic_by_counterparty)
    ]
    assert "ser" not in forwarded and "alert" in forwarded
    (headers,) = dead_letters(sender)
    assert headers["vigil.error"] == b"stage=serialise error=TypeError: cannot serialise"


def test_a_surrogate_account_on_the_input_topic_is_dead_lettered_not_rekeyed(
    model_path: Path,
) -> None:
    pipeline, _, sender = make_pipeline(model_path, S)
    run(pipeline, [tx_json("t", "a\ud800")], topic=S.topic_transactions)
    assert sender.to(S.topic_repartition) == []
    (headers,) = dead_letters(sender)
    assert headers["vigil.error.field"] == b"account_id"


def test_dead_letters_are_cut_to_the_message_limit(model_path: Path) -> None:
    settings = replace(S, max_message_bytes=4096)
    pipeline, _, sender = make_pipeline(model_path, settings)
    big = tx_json("big", "acc-1", pad="x" * 5000)
    long_key = b"k" * 3000
    messages = [Message(S.topic_transactions, 0, 9, long_key, big)]
    asyncio.run(pipeline.process(messages))
    (record,) = sender.to(S.topic_deadletter)
    headers = dict(record.headers)
    assert headers["vigil.truncated"] == str(len(big)).encode()
    assert headers["vigil.source.key.truncated"] == b"3000"
    assert headers["vigil.source.key"] == long_key[:MAX_KEY_HEADER_BYTES]
    assert record.value and big.startswith(record.value)
    size = len(record.value) + sum(len(k) + len(v) for k, v in record.headers)
    assert size + RECORD_FRAMING_BYTES <= 4096
    assert size + RECORD_FRAMING_BYTES > 4096 - 64  # cut no more than needed


def test_fit_dead_letter_keeps_what_fits_whole() -> None:
    msg = Message("t", 0, 1, None, b"{}")
    headers = dead_letter_headers(msg, "payload: x", "payload")
    before = list(headers)
    assert fit_dead_letter(b"{}", headers, 4096) == b"{}"
    assert headers == before
    assert fit_dead_letter(None, headers, 4096) is None


def test_dead_letter_headers_survive_unencodable_and_long_errors() -> None:
    msg = Message("t", 0, 1, None, b"")
    headers = dict(dead_letter_headers(msg, "bad \ud800 " + "é" * 2000, None))
    error = headers["vigil.error"]
    assert len(error) <= 1024
    assert error.decode().startswith("bad \\ud800 é")  # valid UTF-8, never cut mid-character


def test_alerts_carry_the_model_version_after_isolation(model_path: Path) -> None:
    """The ordinary path still works as before: one scored record per transaction."""
    pipeline, _, sender = make_pipeline(model_path, S)
    run(pipeline, [tx_json(f"t{i}", f"acc-{i % 3}", 10.0 + i) for i in range(20)])
    assert scored_ids(sender) == [f"t{i}" for i in range(20)]
    assert dead_letters(sender) == []
    version = pipeline.models.current.champion.version
    assert {orjson.loads(r.value or b"")["model_version"] for r in sender.to(S.topic_scored)} == {
        version
    }
    assert isinstance(pipeline.models.current, ModelSet)
