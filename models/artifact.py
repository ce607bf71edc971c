"""The model artifact: one JSON file holding the booster and everything needed to serve it.

Keeping the booster, feature order, calibration and tier thresholds in a single file makes a
model swap atomic (write a new file, point the worker at it) and makes every scored record
traceable to exactly one version.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from models.features import FEATURE_NAMES

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
    """Read an artifact and refuse it if its features differ from the code's."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"model artifact {path} not found (run `faust -A app train` to build one)"
        ) from None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ArtifactError(f"model artifact {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"model artifact {path} is not a JSON object")
    if doc.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(
            f"model artifact {path} has format {doc.get('format')!r}, expected {ARTIFACT_FORMAT}"
        )
    missing_keys = [k for k in ("version", "thresholds", "booster") if k not in doc]
    if missing_keys:
        raise ArtifactError(f"model artifact {path} lacks {', '.join(missing_keys)}")
    names = tuple(doc.get("feature_names", ()))
    if names != expected_features:
        missing = [n for n in expected_features if n not in names]
        extra = [n for n in names if n not in expected_features]
        raise ArtifactError(
            f"model artifact {path} was trained on other features than this code computes "
            f"(missing {missing}, unexpected {extra}, order differs: "
            f"{not missing and not extra}); retrain it with `faust -A app train`"
        )
    try:
        thresholds = {k: float(v) for k, v in doc["thresholds"].items()}
        calibration = {k: float(v) for k, v in doc.get("calibration", {}).items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise ArtifactError(f"model artifact {path} has malformed thresholds: {exc}") from None
    return ModelArtifact(
        version=str(doc["version"]),
        booster_json=orjson.dumps(doc["booster"]),
        feature_names=names,
        thresholds=thresholds,
        calibration=calibration,
        metrics=doc.get("metrics", {}),
        data_hash=doc.get("data_hash", ""),
        trained_at=doc.get("trained_at", ""),
        params=doc.get("params", {}),
        score_distribution=doc.get("score_distribution", {}),
        code_version=str(doc.get("code_version", "unknown")),
    )


def data_hash(rows: bytes) -> str:
    """Return the SHA-256 of the training data as fed to the trainer."""
    return hashlib.sha256(rows).hexdigest()
