"""Hot swap of the served model: the watcher reloads changed artifact files, keeps the old
model when a new file is broken, and tolerates a missing or broken challenger."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from app.serving import ModelWatcher, ServedModel
from models.artifact import ArtifactError, ModelArtifact, file_stamp
from models.features import FEATURE_NAMES, N_FEATURES
from models.offline.training import Dataset, train_model
from monitoring.metrics import VigilMetrics


@pytest.fixture(scope="module")
def base() -> ModelArtifact:
    """A tiny model on random features (the label follows feature 0)."""
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.random((n, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.random(n) > 0.9).astype(np.int8)
    dataset = Dataset(
        features=x,
        labels=y,
        ts_ms=np.arange(n, dtype=np.int64) + 1_709_251_200_000,
        patterns=tuple("fraud" if v else "legit" for v in y),
        data_hash="test",
    )
    artifact = train_model(dataset, num_boost_round=5, early_stopping_rounds=2, nthread=1)
    artifact.thresholds = {"HIGH": 0.9, "MEDIUM": 0.6, "LOW": 0.3}
    return artifact


def version(base: ModelArtifact, name: str) -> ModelArtifact:
    return replace(base, version=name)


def write(path: Path, artifact: ModelArtifact) -> None:
    """Save atomically and make sure the stamp changes even on a coarse-mtime filesystem."""
    before = file_stamp(path)
    artifact.save(path)
    if file_stamp(path) == before:
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def metrics() -> VigilMetrics:
    return VigilMetrics(CollectorRegistry(auto_describe=True))


def reloads(m: VigilMetrics, role: str, result: str) -> float | None:
    return m.registry.get_sample_value(
        "vigil_model_reloads_total", {"role": role, "result": result}
    )


def info(m: VigilMetrics, name: str, v: str) -> float | None:
    return m.registry.get_sample_value(name, {"version": v})


def served_versions(m: VigilMetrics, name: str) -> list[str]:
    return [
        s.labels["version"]
        for metric in m.registry.collect()
        if metric.name == name
        for s in metric.samples
        if s.value == 1
    ]


def test_loads_the_champion(base: ModelArtifact, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    write(path, version(base, "v1"))
    m = metrics()
    watcher = ModelWatcher(path, None, {}, m)
    assert watcher.current.champion.version == "v1"
    assert watcher.current.challenger is None
    assert watcher.current.champion.thresholds == {"HIGH": 0.9, "MEDIUM": 0.6, "LOW": 0.3}
    assert served_versions(m, "vigil_model_info") == ["v1"]
    assert served_versions(m, "vigil_challenger_info") == []
    assert reloads(m, "champion", "loaded") == 1.0
    assert reloads(m, "champion", "failed") == 0.0
    assert watcher.check() is False  # nothing changed


def test_threshold_overrides_apply_to_the_champion(base: ModelArtifact, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    write(path, version(base, "v1"))
    watcher = ModelWatcher(path, None, {"HIGH": 0.95}, metrics())
    assert watcher.current.champion.thresholds["HIGH"] == 0.95
    with pytest.raises(ArtifactError, match="HIGH >= MEDIUM >= LOW"):
        ModelWatcher(path, None, {"HIGH": 0.1}, metrics())


def test_no_champion_no_watcher(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not found"):
        ModelWatcher(tmp_path / "absent.json", None, {}, metrics())


def test_check_swaps_to_a_changed_file(base: ModelArtifact, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    write(path, version(base, "v1"))
    m = metrics()
    watcher = ModelWatcher(path, None, {}, m)
    old_set = watcher.current
    write(path, version(base, "v2"))
    assert watcher.check() is True
    assert watcher.current.champion.version == "v2"
    assert watcher.current is not old_set  # replaced whole, never changed in place
    assert old_set.champion.version == "v1"
    assert served_versions(m, "vigil_model_info") == ["v2"]
    assert info(m, "vigil_model_info", "v1") is None
    assert reloads(m, "champion", "loaded") == 2.0
    assert watcher.check() is False
    # The new model scores.
    rows = np.zeros((2, N_FEATURES), dtype=np.float32)
    assert watcher.current.champion.scorer.score(rows).shape == (2,)


def test_a_touched_file_is_reloaded(base: ModelArtifact, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    write(path, version(base, "v1"))
    m = metrics()
    watcher = ModelWatcher(path, None, {}, m)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    # Same content, new stamp: loaded again (same version), the served set is replaced.
    assert watcher.check() is True
    assert watcher.current.champion.version == "v1"
    assert reloads(m, "champion", "loaded") == 2.0


@pytest.mark.parametrize(
    "broken",
    [
        b'{"format": 1, "version": "half',  # a truncated write
        b"[]",
        b'{"format": 99}',
    ],
)
def test_a_broken_file_keeps_the_old_model(
    base: ModelArtifact, tmp_path: Path, broken: bytes
) -> None:
    path = tmp_path / "model.json"
    write(path, version(base, "v1"))
    m = metrics()
    watcher = ModelWatcher(path, None, {}, m)
    path.write_bytes(broken)
    os.utime(path, ns=(0, 1_000_000_000))
    assert watcher.check() is False
    assert watcher.current.champion.version == "v1"
    assert reloads(m, "champion", "failed") == 1.0
    assert served_versions(m, "vigil_model_info") == ["v1"]
    assert watcher.check() is False  # the same broken file is not retried
    assert reloads(m, "champion", "failed") == 1.0
    write(path, version(base, "v3"))  # fixed: taken at the next check
    assert watcher.check() is True
    assert watcher.current.champion.version == "v3"


def test_other_features_or_bad_thresholds_are_refused(base: ModelArtifact, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    write(path, version(base, "v1"))
    m = metrics()
    watcher = ModelWatcher(path, None, {}, m)
    write(path, replace(base, version="other", feature_names=FEATURE_NAMES[:-1]))
    assert watcher.check() is False
    write(
        path, replace(base, version="disorder", thresholds={"HIGH": 0.1, "MEDIUM": 0.5, "LOW": 0.9})
    )
    assert watcher.check() is False
    assert watcher.current.champion.version == "v1"
    assert reloads(m, "champion", "failed") == 2.0


def test_an_artifact_with_a_corrupt_booster_keeps_the_old_model(
    base: ModelArtifact, tmp_path: Path
) -> None:
    path = tmp_path / "model.json"
    write(path, version(base, "v1"))
    m = metrics()
    watcher = ModelWatcher(path, None, {}, m)
    write(path, replace(base, version="corrupt", booster_json=b'{"learner": 1}'))
    assert watcher.check() is False
    assert watcher.current.champion.version == "v1"
    assert reloads(m, "champion", "failed") == 1.0


def test_a_removed_champion_file_keeps_serving(base: ModelArtifact, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    write(path, version(base, "v1"))
    watcher = ModelWatcher(path, None, {}, metrics())
    path.unlink()
    assert watcher.check() is False
    assert watcher.current.champion.version == "v1"


def test_challenger_lifecycle(base: ModelArtifact, tmp_path: Path) -> None:
    champion_path = tmp_path / "model.json"
    challenger_path = tmp_path / "challenger.json"
    write(champion_path, version(base, "champ"))
    m = metrics()
    # Missing at start: tolerated, counted.
    watcher = ModelWatcher(champion_path, challenger_path, {"HIGH": 0.95}, m)
    assert watcher.current.challenger is None
    assert reloads(m, "challenger", "failed") == 1.0
    assert served_versions(m, "vigil_challenger_info") == []
    assert watcher.check() is False
    assert reloads(m, "challenger", "failed") == 1.0  # a missing file is not retried
    # Appears: loaded beside the champion, with its own thresholds (no overrides).
    write(challenger_path, version(base, "chal-1"))
    assert watcher.check() is True
    challenger = watcher.current.challenger
    assert challenger is not None and challenger.version == "chal-1"
    assert challenger.thresholds["HIGH"] == 0.9
    assert watcher.current.champion.version == "champ"
    assert watcher.current.champion.thresholds["HIGH"] == 0.95
    assert served_versions(m, "vigil_challenger_info") == ["chal-1"]
    assert served_versions(m, "vigil_model_info") == ["champ"]
    assert reloads(m, "challenger", "loaded") == 1.0
    # Replaced.
    write(challenger_path, version(base, "chal-2"))
    assert watcher.check() is True
    assert served_versions(m, "vigil_challenger_info") == ["chal-2"]
    # Broken: dropped, the champion unaffected.
    challenger_path.write_bytes(b"{")
    os.utime(challenger_path, ns=(0, 2_000_000_000))
    assert watcher.check() is True
    assert watcher.current.challenger is None
    assert watcher.current.champion.version == "champ"
    assert reloads(m, "challenger", "failed") == 2.0
    assert served_versions(m, "vigil_challenger_info") == []
    # Back, then removed: dropped.
    write(challenger_path, version(base, "chal-3"))
    assert watcher.check() is True
    assert served_versions(m, "vigil_challenger_info") == ["chal-3"]
    challenger_path.unlink()
    assert watcher.check() is True
    assert watcher.current.challenger is None
    assert served_versions(m, "vigil_challenger_info") == []
    assert watcher.check() is False


def test_champion_and_challenger_swap_in_one_check(base: ModelArtifact, tmp_path: Path) -> None:
    champion_path = tmp_path / "model.json"
    challenger_path = tmp_path / "challenger.json"
    write(champion_path, version(base, "a"))
    write(challenger_path, version(base, "b"))
    m = metrics()
    watcher = ModelWatcher(champion_path, challenger_path, {}, m)
    assert (
        watcher.current.champion.version,
        getattr(watcher.current.challenger, "version", None),
    ) == ("a", "b")
    write(champion_path, version(base, "b"))
    write(challenger_path, version(base, "c"))
    assert watcher.check() is True
    assert watcher.current.champion.version == "b"
    assert watcher.current.challenger is not None
    assert watcher.current.challenger.version == "c"
    assert served_versions(m, "vigil_model_info") == ["b"]
    assert served_versions(m, "vigil_challenger_info") == ["c"]


def test_served_model_load_wraps_tier_errors(base: ModelArtifact, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write(path, version(base, "v1"))
    assert ServedModel.load(path, {"LOW": 0.2}).thresholds["LOW"] == 0.2
    with pytest.raises(ArtifactError, match=str(path)):
        ServedModel.load(path, {"LOW": 1.5, "MEDIUM": 1.5, "HIGH": 1.5})


def test_file_stamp(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert file_stamp(path) is None
    path.write_bytes(b"abc")
    stamp = file_stamp(path)
    assert stamp is not None and stamp[1] == 3
