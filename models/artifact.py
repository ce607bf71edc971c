"""The model artifact: one JSON file holding the booster and everything needed to serve it.

Keeping the booster, feature order, calibration and tier thresholds in a single file makes a
model swap atomic (write a new file, point the worker at it) and makes every scored record
traceable to exactly one version.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from models.features import FEATURE_NAMES
from models.tiers import ALERTED_TIERS

ARTIFACT_FORMAT = 1


def code_version() -> str:
    """Return the installed Vigil version and a digest of the feature list it computes."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("vigil-aml")
    except PackageNotFoundError:
        package = "unknown"
    features = hashlib.sha256(",".join(FEATURE_NAMES).encode()).hexdigest()[:8]
    return f"{package}+features.{features}"


#: What identifies one version of a file: modification time, size, inode.
Stamp = tuple[int, int, int]


def file_stamp(path: Path) -> Stamp | None:
    """Return the stamp of ``path`` (None when missing), to reload files when they change."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class ArtifactError(ValueError):
    """The artifact cannot be served by this code (missing, corrupt, or other features)."""


@dataclass(slots=True)
class ModelArtifact:
    """A trained model and its metadata."""

    version: str
    booster_json: bytes
    feature_names: tuple[str, ...]
    #: Lowest calibrated score of each alerted tier (HIGH >= MEDIUM >= LOW).
    thresholds: dict[str, float]
    #: Platt scaling of the booster's margin: ``p = sigmoid(a * margin + b)``.
    calibration: dict[str, float] = field(default_factory=lambda: {"a": 1.0, "b": 0.0})
    metrics: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    trained_at: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    #: Histogram of validation scores, the reference for drift monitoring.
    score_distribution: dict[str, list[float]] = field(default_factory=dict)
    #: Vigil version and feature-list digest of the code that trained it.
    code_version: str = field(default_factory=code_version)

    def to_bytes(self) -> bytes:
        """Serialize the artifact (booster embedded as a JSON object)."""
        doc = {
            "format": ARTIFACT_FORMAT,
            "version": self.version,
            "feature_names": list(self.feature_names),
            "thresholds": self.thresholds,
            "calibration": self.calibration,
            "metrics": self.metrics,
            "data_hash": self.data_hash,
            "trained_at": self.trained_at,
            "params": self.params,
            "score_distribution": self.score_distribution,
            "code_version": self.code_version,
            "booster": orjson.Fragment(self.booster_json),
        }
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)

    def save(self, path: Path) -> Path:
        """Write atomically (temp file + rename) so a watching worker never reads half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(self.to_bytes())
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; workers may run as another user
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def load_artifact(path: Path, expected_features: tuple[str, ...] = FEATURE_NAMES) -> ModelArtifact:
    """Read an artifact; raise :class:`ArtifactError` naming the file and the problem.

    Every way a file can be unusable (missing, unreadable, empty, not JSON, a field of the
    wrong type, a non-finite threshold or calibration, other features) is that one error,
    so a worker refuses it at start and keeps its running model on reload.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"model artifact {path} not found (run `faust -A app train` to build one)"
        ) from None
    except OSError as exc:
        raise ArtifactError(
            f"model artifact {path} cannot be read ({exc.strerror or exc})"
        ) from None
    if not data.strip():
        raise ArtifactError(f"model artifact {path} is empty (not valid JSON)")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ArtifactError(f"model artifact {path} is not valid JSON: {exc}") from None
    try:
        return artifact_from_document(doc, expected_features)
    except ArtifactError as exc:
        raise ArtifactError(f"model artifact {path}: {exc}") from None


def _finite_number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArtifactError(f"{where}: must be a number, got {_kind(value)}")
    number = float(value)  # orjson has already refused integers beyond 64 bits
    if not math.isfinite(number):
        raise ArtifactError(f"{where}: must be finite, got {number}")
    return number


def _kind(value: Any) -> str:
    """Name a JSON value's type for a message (never the value itself: it can be huge)."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _object(doc: dict[str, Any], key: str, default: dict[str, Any] | None = None) -> Any:
    value = doc.get(key, default)
    if not isinstance(value, dict):
        raise ArtifactError(f"{key}: must be an object, got {_kind(value)}")
    return value


def _string(doc: dict[str, Any], key: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise ArtifactError(f"{key}: must be a non-empty string, got {_kind(value)}")
    return value


def artifact_from_document(
    doc: Any, expected_features: tuple[str, ...] = FEATURE_NAMES
) -> ModelArtifact:
    """Check a decoded artifact document field by field: the one place artifacts are validated.

    Tier thresholds must be finite and within 0..1, the calibration finite: a NaN there
    would silently score everything MINIMAL.
    """
    if not isinstance(doc, dict):
        raise ArtifactError(f"not a JSON object but {_kind(doc)}")
    if doc.get("format") != ARTIFACT_FORMAT:
        fmt = doc.get("format")
        shown = repr(fmt) if isinstance(fmt, int | str | None) else _kind(fmt)
        raise ArtifactError(f"has format {shown[:40]}, expected {ARTIFACT_FORMAT}")
    missing_keys = [k for k in ("version", "thresholds", "booster") if k not in doc]
    if missing_keys:
        raise ArtifactError(f"lacks {', '.join(missing_keys)}")
    version = _string(doc, "version")
    raw_names = doc.get("feature_names", [])
    if not isinstance(raw_names, list) or not all(isinstance(n, str) for n in raw_names):
        raise ArtifactError(f"feature_names: must be an array of strings, got {_kind(raw_names)}")
    names = tuple(raw_names)
    if names != expected_features:
        missing = [n for n in expected_features if n not in names]
        extra = [n for n in names if n not in expected_features][:10]
        raise ArtifactError(
            f"was trained on other features than this code computes "
            f"(missing {missing}, unexpected {extra}, order differs: "
            f"{not missing and not extra}); retrain it with `faust -A app train`"
        )
    raw_thresholds = _object(doc, "thresholds")
    unknown = sorted(set(raw_thresholds) - set(ALERTED_TIERS))
    if unknown or len(raw_thresholds) != len(ALERTED_TIERS):
        raise ArtifactError(
            f"thresholds: must have exactly {', '.join(ALERTED_TIERS)}, "
            f"got {[k[:40] for k in sorted(raw_thresholds)[:10]]}"
        )
    thresholds = {}
    for tier in ALERTED_TIERS:
        value = _finite_number(f"thresholds.{tier}", raw_thresholds[tier])
        if not 0.0 <= value <= 1.0:
            raise ArtifactError(f"thresholds.{tier}: must be within 0..1, got {value}")
        thresholds[tier] = value
    raw_calibration = _object(doc, "calibration", {"a": 1.0, "b": 0.0})
    unknown = sorted(set(raw_calibration) - {"a", "b"})
    if unknown:
        raise ArtifactError(f"calibration: unknown key {unknown[0][:40]!r}; known: a, b")
    calibration = {k: _finite_number(f"calibration.{k}", v) for k, v in raw_calibration.items()}
    booster = _object(doc, "booster")
    distribution = _object(doc, "score_distribution", {})
    for key, values in distribution.items():
        if not isinstance(values, list):
            raise ArtifactError(f"score_distribution.{key[:40]}: must be an array")
        for value in values:
            _finite_number(f"score_distribution.{key[:40]}", value)
    return ModelArtifact(
        version=version,
        booster_json=orjson.dumps(booster),
        feature_names=names,
        thresholds=thresholds,
        calibration=calibration,
        metrics=_object(doc, "metrics", {}),
        data_hash=_string(doc, "data_hash", ""),
        trained_at=_string(doc, "trained_at", ""),
        params=_object(doc, "params", {}),
        score_distribution=distribution,
        code_version=_string(doc, "code_version", "unknown"),
    )


def data_hash(rows: bytes) -> str:
    """Return the SHA-256 of the training data as fed to the trainer."""
    return hashlib.sha256(rows).hexdigest()
