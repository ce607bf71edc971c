"""The decision of one micro-batch, as a pure function: plain data in, the outcome out.

:func:`decide` runs every step between reading an account's state and writing it back:
features (with replay detection), account AML rules, champion and challenger scores, tiers,
lists, reasons, the records of ``transactions.scored`` and the alert topics, and the rows the
fan-in stage needs. It touches no broker, store, metric or clock: the stream agent
(``agents.pipeline``) loads the states, calls it and emits the :class:`Outcome`; tests drive it
with plain data. The offline replay and backtest run the same per-row pieces
(:func:`featurise`, :func:`models.aml.fanin.final_decision`) in event-time order.

A record that fails alone at any stage becomes a :class:`DeadLetter` of the outcome (reason
``stage.<name>``), never an exception; the rest of the batch is decided. Only a failure that
every row of several shares (a broken model) is raised: it is not one record's fault.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.aml.lists import Decision
from models.aml.runtime import AmlSnapshot
from models.aml.stage import AccountAmlBatch
from models.counterparty_risk import CounterpartyRisk
from models.features import FEATURE_NAMES, N_FEATURES, AccountState, update_account
from models.records import alert_record, challenger_record, dumps, scored_record
from models.redelivery import InputPosition
from models.scorer import Reason
from models.tiers import tier_for_score
from models.transaction import Transaction, ValidationError, parse_transaction

__all__ = [
    "Alert",
    "DeadLetter",
    "Forward",
    "ModelPair",
    "NonFiniteFeatureError",
    "Outcome",
    "Row",
    "Scored",
    "ServedScorer",
    "Slot",
    "decide",
    "featurise",
    "parse_input",
]

#: Where an account's state lives: (partition, account key).
Slot = tuple[int, bytes]
#: Per-counterparty risk from delayed labels; may raise (the record is then dead-lettered).
RiskLookup = Callable[[str], CounterpartyRisk | None]


class BatchScorer(Protocol):
    """What :func:`decide` asks of a model (``models.scorer.Scorer`` has it)."""

    def score(self, rows: np.ndarray) -> np.ndarray: ...
    def explain(
        self, rows: np.ndarray, top_k: int = 3, values: list[list[float]] | None = None
    ) -> list[list[Reason]]: ...


class ServedScorer(Protocol):
    """A served model: its scorer, version and tier thresholds (``app.serving``)."""

    @property
    def scorer(self) -> BatchScorer: ...
    @property
    def version(self) -> str: ...
    @property
    def thresholds(self) -> Mapping[str, float]: ...


class ModelPair(Protocol):
    """The champion that decides and the challenger scored in shadow (optional)."""

    @property
    def champion(self) -> ServedScorer: ...
    @property
    def challenger(self) -> ServedScorer | None: ...


@dataclass(slots=True)
class Row:
    """One parsed transaction of the batch, in input order.

    Rows and outputs are plain (not frozen) dataclasses: one of each per transaction, and a
    frozen dataclass costs about four times as much to build. Nothing changes them.
    """

    #: Position of the record in the caller's batch (dead letters and outputs name it).
    index: int
    tx: Transaction
    #: The account key (``account_id`` as bytes) and the partition its state lives in.
    key: bytes
    partition: int
    #: Where the record was read (offset marks, ``models.redelivery``); None offline.
    position: InputPosition | None = None

    @property
    def slot(self) -> Slot:
        """Return where the row's account state lives."""
        return (self.partition, self.key)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record refused (validation) or that failed alone at a stage."""

    index: int
    #: The ``vigil_deadletters_total`` label: a validation reason or ``stage.<name>``.
    reason: str
    #: The ``vigil.error`` header text.
    error: str
    #: The field to blame (validation), None when a processing stage failed.
    field: str | None = None
    #: The exception of a failed stage (for the caller's log), None for validation.
    exc: BaseException | None = None


@dataclass(slots=True)
class Scored:
    """A row's ``transactions.scored`` record and, if alerted, its alert."""

    index: int
    partition: int
    key: bytes
    value: bytes
    tier: str
    replayed: bool
    #: The alert's value (to the tier's alert topic), None when not alerted.
    alert: bytes | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert of the batch: its tier and value (the row is in :attr:`Outcome.scored`)."""

    index: int
    tier: str
    value: bytes


@dataclass(slots=True)
class Forward:
    """A row the counterparty-keyed (fan-in) stage needs, keyed by counterparty."""

    index: int
    topic: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class Counts:
    """What the batch did, for metrics."""

    #: Rows scored for the first time, and replays scored again (not counted twice).
    scored: int = 0
    replayed: int = 0
    #: Scored rows per final tier, and alerts per tier.
    tiers: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    #: Records naming each rule (every decided row, as ``vigil_rule_hits_total`` counts).
    rule_hits: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class Outcome:
    """Everything a batch produces, in the order the stream emits it."""

    #: States of the accounts the batch touched (replays included: see ``decide``).
    states: dict[Slot, AccountState] = field(default_factory=dict)
    #: Scored rows in input order, each with its alert.
    scored: list[Scored] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    #: Dead letters in the order they were found.
    dead_letters: list[DeadLetter] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    #: Champion and challenger scores of the rows that were scored by the model.
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    challenger_scores: np.ndarray | None = None

    @property
    def alerts(self) -> list[Alert]:
        """Return the alerts, in input order."""
        return [Alert(s.index, s.tier, s.alert) for s in self.scored if s.alert is not None]


class NonFiniteFeatureError(ArithmeticError):
    """A feature came out infinite (beyond float32): the model must never see it."""


#: The decision recorded for a row that failed before its own: keeps row indices aligned.
_FAILED = Decision("MINIMAL", [], False, False)


def parse_input(
    index: int, value: bytes | None, max_bytes: int, max_amount: float
) -> Transaction | DeadLetter:
    """Parse one input record into its transaction, or its dead letter.

    The transaction's account key is ``tx.account_id.encode()``, which cannot fail here.
    """
    try:
        tx = parse_transaction(value, max_bytes, max_amount)
        tx.account_id.encode()  # a lone surrogate is the record's fault: dead-letter it here
        return tx
    except ValidationError as err:
        return DeadLetter(index, err.reason, str(err), err.field)
    except Exception as exc:  # confined to this record; validation should have said
        return stage_failure(index, "parse", exc)


def stage_failure(index: int, stage: str, exc: BaseException) -> DeadLetter:
    """Return the dead letter of a record that failed alone at ``stage``."""
    error = f"stage={stage} error={type(exc).__name__}: {exc}"
    return DeadLetter(index, f"stage.{stage}", error, None, exc)


def featurise(
    state: AccountState | None,
    tx: Transaction,
    cp_risk: CounterpartyRisk | None = None,
    pos: InputPosition | None = None,
) -> tuple[list[float], AccountState, bool]:
    """Return ``tx``'s features, the state that includes it, and whether it was a replay.

    A replay (``models.redelivery``: applied already) is featurised but not counted again.
    """
    before = state.n if state is not None else 0
    features, state = update_account(state, tx, cp_risk, pos)
    return features, state, state.n == before


def _score_both(models: ModelPair, rows: np.ndarray) -> None:
    models.champion.scorer.score(rows)
    if models.challenger is not None:
        models.challenger.scorer.score(rows)


def _failing_rows(
    work: Callable[[np.ndarray], object], rows: np.ndarray
) -> dict[int, BaseException]:
    """Return the rows ``work`` fails on one at a time, after it failed on all of them.

    A failure is the record's when the other rows pass without it; when every row of
    several fails alone, the cause is not in the records (a broken model): raise it.
    """
    failed: dict[int, BaseException] = {}
    for i in range(rows.shape[0]):
        try:
            work(rows[i : i + 1])
        except Exception as exc:
            failed[i] = exc
    if len(failed) == rows.shape[0] and len(failed) > 1:
        raise next(iter(failed.values()))
    return failed


class _Batch:
    """The rows still alive and their per-row data, aligned by position."""

    def __init__(self, out: Outcome, aml: AccountAmlBatch) -> None:
        self.out = out
        self.aml = aml
        self.rows: list[Row] = []
        self.features: list[list[float]] = []
        self.replayed: list[bool] = []

    def fail(self, row: Row, stage: str, exc: BaseException) -> None:
        self.out.dead_letters.append(stage_failure(row.index, stage, exc))

    def drop(self, failed: dict[int, BaseException], stage: str, matrix: np.ndarray) -> np.ndarray:
        """Dead-letter the ``failed`` rows; return the matrix without them."""
        for i in sorted(failed, reverse=True):
            self.fail(self.rows[i], stage, failed[i])
            del self.aml.hits[i]
        keep = [i for i in range(len(self.rows)) if i not in failed]
        self.rows = [self.rows[i] for i in keep]
        self.features = [self.features[i] for i in keep]
        self.replayed = [self.replayed[i] for i in keep]
        return matrix[keep]


def decide(
    rows: Sequence[Row],
    states: Mapping[Slot, AccountState | bytes | None],
    risk: RiskLookup,
    models: ModelPair,
    aml: AmlSnapshot,
    now_ms: int,
    *,
    reasons_top_k: int,
    forward_topic: str,
) -> Outcome:
    """Decide one micro-batch; see the module doc.

    ``states`` holds each row's account state by :attr:`Row.slot`: a decoded state, its stored
    bytes (decoded here, so a corrupt value dead-letters its record at ``featurise``) or
    None (a new account). Decoded states are updated in place. ``risk`` is asked once per
    counterparty per batch. Every output of a row is built before the next stage's, so a
    row ends up either scored (with its alert and forward) or dead-lettered, never both. A
    row that fails after its state was updated leaves that update in place, and replays are
    in :attr:`Outcome.states` too: after a crash the local database may be ahead of the
    changelog, and only a new changelog record brings standbys up to date.
    """
    out = Outcome()
    amlb = AccountAmlBatch(aml, now_ms, forward_topic)
    batch = _Batch(out, amlb)
    work: dict[Slot, AccountState] = {}
    risks: dict[str, CounterpartyRisk | None] = {}
    for row in rows:
        slot = row.slot
        tx = row.tx
        try:
            state = work.get(slot)
            if state is None:
                stored = states.get(slot)
                if isinstance(stored, bytes):
                    stored = AccountState.from_bytes(stored)
                state = work[slot] = stored if stored is not None else AccountState()
            cp = tx.counterparty_id
            cp_risk = None
            if cp is not None:
                if cp in risks:
                    cp_risk = risks[cp]
                else:
                    cp_risk = risks[cp] = risk(cp)
            features, state, replayed = featurise(state, tx, cp_risk, row.position)
            amlb.evaluate(state, tx, features, replay=replayed)
        except Exception as exc:  # confined to this record (and its account's state)
            batch.fail(row, "featurise", exc)
            continue
        out.states[slot] = state
        batch.rows.append(row)
        batch.features.append(features)
        batch.replayed.append(replayed)

    # One conversion for the batch (a list row into a numpy row costs ~2 us each). A value
    # beyond float32 becomes inf, which the check below dead-letters: no warning needed.
    with np.errstate(over="ignore"):
        matrix = np.array(batch.features, dtype=np.float32).reshape(len(batch.rows), N_FEATURES)
    if np.isinf(matrix).any():  # bounded inputs cannot get here; a bug must not either
        failed: dict[int, BaseException] = {}
        for i in np.flatnonzero(np.isinf(matrix).any(axis=1)).tolist():
            names = [FEATURE_NAMES[j] for j in np.flatnonzero(np.isinf(matrix[i])).tolist()]
            failed[i] = NonFiniteFeatureError(f"infinite as float32: {', '.join(names)}")
        matrix = batch.drop(failed, "featurise", matrix)
    model = models.champion
    challenger = models.challenger
    try:
        scores = model.scorer.score(matrix)
        ch_scores = challenger.scorer.score(matrix) if challenger is not None else None
    except Exception:
        failed = _failing_rows(lambda r: _score_both(models, r), matrix)
        matrix = batch.drop(failed, "score", matrix)
        scores = model.scorer.score(matrix)
        ch_scores = challenger.scorer.score(matrix) if challenger is not None else None
    out.scores, out.challenger_scores = scores, ch_scores

    outputs, tiers, alerted = _records(batch, models, scores, ch_scores, now_ms)
    alerts, explained = _alerts(
        batch, model, matrix, scores, outputs, tiers, alerted, now_ms, reasons_top_k
    )
    if aml.fanin.rules:
        _forwards(batch, scores, model.version, explained, outputs, tiers)

    counts = out.counts
    for i, row in enumerate(batch.rows):
        value = outputs[i]
        if value is None:
            continue
        replayed = batch.replayed[i]
        alert = alerts.get(i)
        out.scored.append(
            Scored(row.index, row.partition, row.key, value, tiers[i], replayed, alert)
        )
        counts.tiers[tiers[i]] += 1
        if alert is not None:
            counts.alerts[tiers[i]] += 1
        counts.scored += not replayed
        counts.replayed += replayed
    counts.rule_hits = amlb.hit_counts()
    counts.dead_letters = Counter(d.reason for d in out.dead_letters)
    return out


def _records(
    batch: _Batch,
    models: ModelPair,
    scores: np.ndarray,
    ch_scores: np.ndarray | None,
    now_ms: int,
) -> tuple[list[bytes | None], list[str], list[int]]:
    """Decide each row's tier (model, rules, lists) and build its scored record.

    Returns each row's record (None once dead-lettered), final tier ("" then) and the rows
    to alert on.
    """
    model = models.champion
    challenger = models.challenger
    amlb = batch.aml
    thresholds = model.thresholds
    alerted: list[int] = []
    tiers: list[str] = []
    outputs: list[bytes | None] = []
    for i, row in enumerate(batch.rows):
        tx = row.tx
        stage = "rule"
        try:
            score = float(scores[i])
            decision = amlb.decide(i, tx, tier_for_score(score, thresholds))
            tier = decision.tier  # the model's tier raised by AML rules and lists
            stage = "serialise"
            shadow = None
            if ch_scores is not None:
                assert challenger is not None
                ch_score = float(ch_scores[i])
                shadow = challenger_record(
                    challenger.version,
                    ch_score,
                    tier_for_score(ch_score, challenger.thresholds),
                )
            value = scored_record(
                tx, score, tier, model.version, decision.rules, now_ms, batch.replayed[i], shadow
            )
        except Exception as exc:
            if len(amlb.decisions) == i:
                amlb.decisions.append(_FAILED)
            batch.fail(row, stage, exc)
            tiers.append("")
            outputs.append(None)
            continue
        tiers.append(tier)
        outputs.append(value)
        if decision.alert:
            alerted.append(i)
    return outputs, tiers, alerted


def _alerts(
    batch: _Batch,
    model: ServedScorer,
    matrix: np.ndarray,
    scores: np.ndarray,
    outputs: list[bytes | None],
    tiers: list[str],
    alerted: list[int],
    now_ms: int,
    top_k: int,
) -> tuple[dict[int, bytes], dict[int, Any]]:
    """Explain the alerted rows and build their alerts; return alerts and reasons by row.

    A row that cannot be explained or serialised alone is dead-lettered (its ``outputs``
    and ``tiers`` entries are cleared).
    """
    alerts: dict[int, bytes] = {}
    explained: dict[int, Any] = {}
    if not alerted:
        return alerts, explained
    feature_rows = batch.features
    try:
        why = model.scorer.explain(matrix[alerted], top_k, [feature_rows[i] for i in alerted])
    except Exception:
        failed = _failing_rows(lambda r: model.scorer.explain(r, top_k), matrix[alerted])
        for j, err in failed.items():
            i = alerted[j]
            batch.fail(batch.rows[i], "explain", err)
            outputs[i], tiers[i] = None, ""
        alerted = [i for i in alerted if outputs[i] is not None]
        why = model.scorer.explain(matrix[alerted], top_k, [feature_rows[i] for i in alerted])
    for i, reasons in zip(alerted, why, strict=True):
        tx = batch.rows[i].tx
        try:
            rules = batch.aml.decisions[i].rules
            score = float(scores[i])
            alert = alert_record(
                tx, score, tiers[i], model.version, reasons, rules, feature_rows[i], now_ms
            )
            alerts[i] = dumps(alert)
        except Exception as exc:
            batch.fail(batch.rows[i], "serialise", exc)
            outputs[i], tiers[i] = None, ""
            continue
        explained[i] = reasons
    return alerts, explained


def _forwards(
    batch: _Batch,
    scores: np.ndarray,
    model_version: str,
    explained: Mapping[int, Any],
    outputs: list[bytes | None],
    tiers: list[str],
) -> None:
    """Add the rows the fan-in stage needs (``agents/counterparties.py``), keyed by counterparty."""
    for i, row in enumerate(batch.rows):
        if outputs[i] is None:
            continue
        try:
            forward = batch.aml.forward_record(
                i, row.tx, scores, model_version, explained, batch.features
            )
        except Exception as exc:
            batch.fail(row, "forward", exc)
            outputs[i], tiers[i] = None, ""
            continue
        if forward is not None:
            topic, key, value = forward
            batch.out.forwards.append(Forward(row.index, topic, key, value))
