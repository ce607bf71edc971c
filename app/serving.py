"""The champion (and optional challenger) model a worker serves, swapped without a restart.

Swaps follow the artifact *files*: the worker polls ``VIGIL_MODEL_PATH`` (and
``VIGIL_CHALLENGER_MODEL_PATH``) every ``VIGIL_MODEL_RELOAD_S`` and loads a file whose
modification time, size or inode changed. A watched path rather than a control topic:
every worker must swap (a topic read by a consumer group reaches one of them), artifacts are
files already and are written atomically (temp file + rename, see ``ModelArtifact.save``),
and deployment tools promote a model by replacing a file on a volume. A file that fails to
load leaves the running model in place, is logged once (one ERROR naming the file and the
problem) and is counted in ``vigil_model_reloads_total`` and ``vigil_reload_failures_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import xgboost as xgb

from models.artifact import ArtifactError, ModelArtifact, Stamp, file_stamp, load_artifact
from models.scorer import Scorer
from models.tiers import TierError, resolve_thresholds
from monitoring.metrics import VigilMetrics

log = logging.getLogger(__name__)


class ServedModel:
    """The scorer and effective tier thresholds of one artifact."""

    def __init__(self, artifact: ModelArtifact, overrides: Mapping[str, float]) -> None:
        self.artifact = artifact
        self.scorer = Scorer(artifact)
        self.version = artifact.version
        self.thresholds = resolve_thresholds(artifact.thresholds, overrides)

    @classmethod
    def load(cls, path: Path, overrides: Mapping[str, float]) -> ServedModel:
        """Load and check an artifact; raise :class:`ArtifactError` if it cannot be served."""
        try:
            return cls(load_artifact(path), overrides)
        except ArtifactError:
            raise
        except (TierError, xgb.core.XGBoostError, ValueError, TypeError) as exc:
            # A booster xgboost cannot read is a broken artifact too, not a crash of the timer.
            first_line = str(exc).partition("\n")[0][:300]
            raise ArtifactError(f"model artifact {path}: {first_line}") from None


@dataclass(frozen=True, slots=True)
class ModelSet:
    """What one micro-batch is scored with; replaced whole, never changed in place."""

    champion: ServedModel
    challenger: ServedModel | None = None


class ModelWatcher:
    """Load the configured artifacts and reload them when their files change."""

    def __init__(
        self,
        champion_path: Path,
        challenger_path: Path | None,
        overrides: Mapping[str, float],
        metrics: VigilMetrics,
    ) -> None:
        self.champion_path = champion_path
        self.challenger_path = challenger_path
        self.overrides = dict(overrides)
        self.metrics = metrics
        self._stamps: dict[str, Stamp | None] = {}
        champion = ServedModel.load(champion_path, self.overrides)  # no model, no worker
        self._stamps["champion"] = file_stamp(champion_path)
        self.metrics.model_reloads.labels("champion", "loaded").inc()
        challenger = self._load_challenger() if challenger_path is not None else None
        self.current = ModelSet(champion, challenger)
        self._publish()

    def _load_challenger(self) -> ServedModel | None:
        assert self.challenger_path is not None
        self._stamps["challenger"] = file_stamp(self.challenger_path)
        try:
            model = ServedModel.load(self.challenger_path, {})
        except ArtifactError as exc:
            # A challenger is an experiment: the champion keeps serving without it.
            self.metrics.model_reloads.labels("challenger", "failed").inc()
            self.metrics.file_reloaded("challenger_model", False)
            log.error("challenger not loaded: %s", exc)
            return None
        self.metrics.model_reloads.labels("challenger", "loaded").inc()
        self.metrics.file_reloaded("challenger_model", True)
        return model

    def _publish(self) -> None:
        self.metrics.set_model(self.current.champion.version)
        challenger = self.current.challenger
        self.metrics.set_challenger(None if challenger is None else challenger.version)

    def check(self) -> bool:
        """Reload changed artifact files; return whether the served set changed.

        Blocking (reads and parses files): run it in a thread.
        """
        current = self.current
        champion, challenger = current.champion, current.challenger
        stamp = file_stamp(self.champion_path)
        if stamp != self._stamps.get("champion"):
            # Remembered before loading: a bad version is reported once, not at every check.
            self._stamps["champion"] = stamp
            try:
                champion = ServedModel.load(self.champion_path, self.overrides)
            except ArtifactError as exc:
                self.metrics.model_reloads.labels("champion", "failed").inc()
                self.metrics.file_reloaded("model", False)
                log.error(
                    "new model not loaded, still serving %s: %s", current.champion.version, exc
                )
            else:
                self.metrics.model_reloads.labels("champion", "loaded").inc()
                self.metrics.file_reloaded("model", True)
        if self.challenger_path is not None:
            stamp = file_stamp(self.challenger_path)
            if stamp != self._stamps.get("challenger"):
                if stamp is not None:
                    challenger = self._load_challenger()
                else:  # removed: scoring without a challenger is what was asked
                    challenger = None
                    self.metrics.file_reloaded("challenger_model", True)
        if champion is current.champion and challenger is current.challenger:
            return False
        self.current = ModelSet(champion, challenger)
        self._publish()
        log.info(
            "serving model %s (challenger %s)",
            champion.version,
            None if challenger is None else challenger.version,
        )
        return True
