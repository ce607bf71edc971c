"""The batch decision (models.decision.decide) driven with plain data: no broker, no store.

Tiers come from a scorer that reads the score off the amount, so each test chooses its tiers;
the challenger test serves a real trained model beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import models.aml.stage as stage_module
import models.decision as decision_module
from models.aml.forward import forward_record, parse_forward
from models.aml.lists import IdList, Lists, ListVerdict
from models.aml.rulebook import Rulebook
from models.aml.runtime import AmlSnapshot
from models.artifact import load_artifact
from models.counterparty_risk import CounterpartyRisk
from models.decision import DeadLetter, Outcome, Row, decide, parse_input
from models.features import FEATURE_NAMES, AccountState, update_account
from models.records import scored_record
from models.redelivery import InputPosition
from models.scorer import Reason, Scorer
from models.tiers import resolve_thresholds
from models.transaction import Transaction
from tests.poison import tx_json
from tests.unit.aml_support import default_rulebook

NOW_MS = 1_772_442_000_000
THRESHOLDS = {"HIGH": 0.9, "MEDIUM": 0.6, "LOW": 0.3}
FORWARD_TOPIC = "transactions.by-counterparty"
AMOUNT = FEATURE_NAMES.index("amount")
NO_RULES = AmlSnapshot.of(Rulebook())


class AmountScorer:
    """Score = amount / 100,000 (capped at 1); explain names the amount. Fails where told."""

    def __init__(self, fail_score: float = -1.0, fail_explain: float = -1.0) -> None:
        self.fail_score = fail_score
        self.fail_explain = fail_explain
        self.explained: list[float] = []

    def score(self, rows: np.ndarray) -> np.ndarray:
        if (rows[:, AMOUNT] == self.fail_score).any():
            raise ValueError("cannot score this row")
        return np.minimum(rows[:, AMOUNT].astype(np.float64) / 100_000.0, 1.0)

    def explain(
        self, rows: np.ndarray, top_k: int = 3, values: list[list[float]] | None = None
    ) -> list[list[Reason]]:
        if (rows[:, AMOUNT] == self.fail_explain).any():
            raise ValueError("cannot explain this row")
        self.explained += rows[:, AMOUNT].tolist()
        return [[Reason("amount", float(r[AMOUNT]), 1.5)] for r in rows]


@dataclass
class Served:
    scorer: Any
    version: str
    thresholds: dict[str, float]


@dataclass
class Pair:
    champion: Served
    challenger: Served | None = None


def champion(scorer: Any = None) -> Pair:
    return Pair(Served(scorer or AmountScorer(), "m-1", THRESHOLDS))


def rows_of(values: list[bytes], partition: int = 0, topic: str = "tx") -> list[Row]:
    """Parse ``values`` into rows read at offsets 0.. of ``topic``."""
    rows = []
    for i, value in enumerate(values):
        tx = parse_input(i, value, 65536, 1e12)
        assert not isinstance(tx, DeadLetter), tx
        rows.append(Row(i, tx, tx.account_id.encode(), partition, InputPosition(topic, i, None)))
    return rows


def no_risk(counterparty_id: str) -> CounterpartyRisk | None:
    return None


def run(
    rows: list[Row],
    models: Pair | None = None,
    aml: AmlSnapshot = NO_RULES,
    states: dict[Any, AccountState | bytes | None] | None = None,
    risk: Any = no_risk,
) -> Outcome:
    return decide(
        rows,
        states or {},
        risk,
        models or champion(),
        aml,
        NOW_MS,
        reasons_top_k=3,
        forward_topic=FORWARD_TOPIC,
    )


def scored(out: Outcome) -> dict[str, dict[str, Any]]:
    return {orjson.loads(s.value)["tx_id"]: orjson.loads(s.value) for s in out.scored}


def test_scores_tiers_alerts_and_states_of_a_batch() -> None:
    values = [
        tx_json("h", "acc-1", 95_123.5),
        tx_json("m", "acc-2", 65_123.5),
        tx_json("l", "acc-3", 35_123.5),
        tx_json("n", "acc-1", 1_123.5),
    ]
    out = run(rows_of(values))
    records = scored(out)
    assert {k: r["tier"] for k, r in records.items()} == {
        "h": "HIGH",
        "m": "MEDIUM",
        "l": "LOW",
        "n": "MINIMAL",
    }
    assert records["h"]["score"] == pytest.approx(0.951235)
    assert all(r["scored_ts"] == NOW_MS and r["model_version"] == "m-1" for r in records.values())
    assert [s.index for s in out.scored] == [0, 1, 2, 3]
    assert [(a.index, a.tier) for a in out.alerts] == [(0, "HIGH"), (1, "MEDIUM"), (2, "LOW")]
    alert = orjson.loads(out.alerts[0].value)
    assert alert["alert_id"] == "h"
    assert alert["reasons"] == [{"feature": "amount", "value": 95_123.5, "contribution": 1.5}]
    assert out.counts.scored == 4 and out.counts.replayed == 0
    assert out.counts.tiers == {"HIGH": 1, "MEDIUM": 1, "LOW": 1, "MINIMAL": 1}
    assert out.counts.alerts == {"HIGH": 1, "MEDIUM": 1, "LOW": 1}
    assert out.dead_letters == [] and out.forwards == []
    assert out.states[(0, b"acc-1")].n == 2  # both of acc-1's transactions counted
    assert set(out.states) == {(0, b"acc-1"), (0, b"acc-2"), (0, b"acc-3")}


def test_a_replayed_transaction_is_counted_once_and_re_emitted_as_replayed() -> None:
    first = rows_of([tx_json("t1", "acc-1", 500.5)])
    out = run(first)
    stored = out.states[(0, b"acc-1")].to_bytes()
    again = run(first, states={(0, b"acc-1"): stored})  # the same record redelivered
    (record,) = scored(again).values()
    assert record["replayed"] is True
    assert again.counts.replayed == 1 and again.counts.scored == 0
    assert again.states[(0, b"acc-1")].n == 1  # in the outcome (changelog), not counted twice
    same_batch = run(rows_of([tx_json("t2", "acc-2"), tx_json("t2", "acc-2")]))
    assert [r.replayed for r in same_batch.scored] == [False, True]
    assert same_batch.states[(0, b"acc-2")].n == 1


def test_the_input_position_marks_the_state_and_finds_a_redelivery_by_offset() -> None:
    (row,) = rows_of([tx_json("a", "acc-1")])
    row = Row(0, row.tx, row.key, 0, InputPosition("tx", 7, 8))
    out = run([row])
    state = out.states[(0, b"acc-1")]
    assert state.offsets == {"tx": 7}
    (other,) = rows_of([tx_json("b", "acc-1")])  # another tx_id, at the applied offset
    redelivered = Row(0, other.tx, other.key, 0, InputPosition("tx", 7, 8))
    again = run([redelivered], states={(0, b"acc-1"): state.to_bytes()})
    assert again.scored[0].replayed and again.states[(0, b"acc-1")].n == 1
    recreated = Row(0, other.tx, other.key, 0, InputPosition("tx", 7, 3))  # log end below
    fresh = run([recreated], states={(0, b"acc-1"): state.to_bytes()})
    assert not fresh.scored[0].replayed and fresh.states[(0, b"acc-1")].n == 2


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom")


class ExplodingLists(Lists):
    """Lists whose verdict on one account cannot be made."""

    def verdict(self, account_id: str, counterparty_id: str | None, now_ms: int) -> ListVerdict:
        if account_id == "acc-2":
            raise RuntimeError("boom")
        return super().verdict(account_id, counterparty_id, now_ms)


@pytest.mark.parametrize(
    "stage", ["featurise", "state", "infinite", "score", "rule", "serialise", "explain", "forward"]
)
def test_a_record_failing_alone_at_any_stage_is_a_dead_letter(
    stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = [
        tx_json("ok-1", "acc-1", 95_123.5, type="TRANSFER", counterparty_id="cp-1"),
        tx_json("bad", "acc-2", 77_777.5, type="TRANSFER", counterparty_id="cp-bad"),
        tx_json("ok-2", "acc-3", 45_123.5, type="TRANSFER", counterparty_id="cp-1"),
    ]
    rows = rows_of(values)
    aml = AmlSnapshot.of(default_rulebook())
    states: dict[Any, AccountState | bytes | None] = {}
    risk: Any = no_risk
    scorer = AmountScorer()
    bad = rows[1].tx

    def only_bad(real: Any) -> Any:
        def wrapped(tx: Transaction, *args: Any, **kwargs: Any) -> Any:
            if tx.tx_id == bad.tx_id:
                raise RuntimeError("boom")
            return real(tx, *args, **kwargs)

        return wrapped

    if stage == "featurise":

        def risk(cp: str) -> CounterpartyRisk | None:
            return boom() if cp == "cp-bad" else None

    elif stage == "state":
        states[(0, b"acc-2")] = b"[99]"
    elif stage == "infinite":
        real_update = update_account

        def update(state: Any, tx: Transaction, *args: Any) -> Any:
            features, state = real_update(state, tx, *args)
            if tx.tx_id == "bad":
                features[FEATURE_NAMES.index("sum_30d")] = 1e39  # beyond float32
            return features, state

        monkeypatch.setattr(decision_module, "update_account", update)
    elif stage == "score":
        scorer = AmountScorer(fail_score=77_777.5)
    elif stage == "rule":
        aml = AmlSnapshot.of(default_rulebook(), ExplodingLists())
    elif stage == "serialise":
        monkeypatch.setattr(decision_module, "scored_record", only_bad(scored_record))
    elif stage == "explain":
        scorer = AmountScorer(fail_explain=77_777.5)
    elif stage == "forward":
        monkeypatch.setattr(stage_module, "forward_record", only_bad(forward_record))

    out = run(rows, champion(scorer), aml, states, risk)
    (dead,) = out.dead_letters
    reason = {"state": "featurise", "infinite": "featurise"}.get(stage, stage)
    assert (dead.index, dead.reason, dead.field) == (1, f"stage.{reason}", None)
    assert dead.error.startswith(f"stage={reason} error=")
    assert out.counts.dead_letters == {f"stage.{reason}": 1}
    assert list(scored(out)) == ["ok-1", "ok-2"]
    assert [a.index for a in out.alerts] == [0, 2]
    assert [f.index for f in out.forwards] == [0, 2]
    assert out.counts.scored == 2
    if stage in ("featurise", "state"):
        assert (0, b"acc-2") not in out.states  # nothing of the failed record is written


def test_a_model_failing_every_row_raises_it() -> None:
    scorer = AmountScorer(fail_score=77_777.5)
    rows = rows_of([tx_json("a", "acc-1", 77_777.5), tx_json("b", "acc-2", 77_777.5)])
    with pytest.raises(ValueError, match="cannot score"):
        run(rows, champion(scorer))


def test_parse_input_dead_letters_with_the_field_or_the_stage() -> None:
    refused = parse_input(3, b'{"tx_id": "x"}', 65536, 1e12)
    assert isinstance(refused, DeadLetter)
    assert refused.index == 3 and refused.field is not None and refused.exc is None
    tx = parse_input(0, tx_json("ok", "acc-9"), 65536, 1e12)
    assert isinstance(tx, Transaction) and tx.tx_id == "ok"


def test_rules_raise_tiers_and_forwards_feed_the_fan_in_stage() -> None:
    values = [
        tx_json("round", "acc-1", 25_000, type="TRANSFER", counterparty_id="mule"),
        tx_json("quiet", "acc-2", 1_234.5, type="TRANSFER", counterparty_id="mule"),
        tx_json("pay", "acc-3", 1_234.5, type="PAYMENT", counterparty_id="mule"),
        tx_json("allowed", "acc-ok", 1_234.5, type="TRANSFER", counterparty_id="mule"),
    ]
    lists = Lists(allow=IdList(accounts=frozenset({"acc-ok"})))
    aml = AmlSnapshot.of(default_rulebook(), lists)
    out = run(rows_of(values), aml=aml)
    records = scored(out)
    assert records["round"]["tier"] == "LOW"  # the model says MINIMAL (0.25)
    assert [r["rule_id"] for r in records["round"]["rules"]] == ["round_amount"]
    (alert,) = out.alerts
    assert alert.index == 0 and [r["rule_id"] for r in orjson.loads(alert.value)["rules"]] == [
        "round_amount"
    ]
    assert out.counts.rule_hits == {"round_amount": 1}
    assert [(f.index, f.topic, f.key) for f in out.forwards] == [
        (0, FORWARD_TOPIC, b"mule"),
        (1, FORWARD_TOPIC, b"mule"),
        (3, FORWARD_TOPIC, b"mule"),  # a PAYMENT is not a fan-in type
    ]
    forwarded = [parse_forward(f.value) for f in out.forwards]
    assert [(f.tier, f.alerts) for f in forwarded] == [
        ("LOW", True),
        ("MINIMAL", True),
        ("MINIMAL", False),  # allow-listed: the fan-in stage must not alert
    ]
    assert forwarded[0].reasons  # the alerted row's reasons go with it
    assert forwarded[1].reasons == []


def test_the_challenger_is_scored_in_shadow_and_never_decides(model_path: Path) -> None:
    artifact = load_artifact(model_path)
    real = Served(Scorer(artifact), artifact.version, resolve_thresholds(artifact.thresholds, {}))
    models = Pair(Served(AmountScorer(), "m-1", THRESHOLDS), real)
    out = run(rows_of([tx_json("a", "acc-1", 95_123.5), tx_json("b", "acc-2", 12.5)]), models)
    records = scored(out)
    assert out.challenger_scores is not None and len(out.challenger_scores) == 2
    for i, tx_id in enumerate(("a", "b")):
        shadow = records[tx_id]["challenger"]
        assert shadow["model_version"] == artifact.version
        assert shadow["score"] == pytest.approx(float(out.challenger_scores[i]), abs=1e-6)
        assert records[tx_id]["model_version"] == "m-1"
    assert records["a"]["tier"] == "HIGH" and records["b"]["tier"] == "MINIMAL"
    assert [a.index for a in out.alerts] == [0]  # the champion's tiers alone alert
