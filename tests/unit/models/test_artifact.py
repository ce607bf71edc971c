"""Model artifact round trip and the scorer, on a tiny booster trained here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import xgboost as xgb

from models.artifact import ArtifactError, ModelArtifact, data_hash, load_artifact
from models.features import FEATURE_NAMES, N_FEATURES
from models.scorer import Reason, Scorer

THRESHOLDS = {"HIGH": 0.9, "MEDIUM": 0.6, "LOW": 0.3}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, N_FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values, as in real feature rows
    signal = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 2]) - np.nan_to_num(x[:, 5])
    y = (signal + rng.normal(scale=0.5, size=len(x)) > 0).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def booster(data: tuple[np.ndarray, np.ndarray]) -> xgb.Booster:
    x, y = data
    dtrain = xgb.DMatrix(x, label=y, feature_names=list(FEATURE_NAMES))
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 1}
    return xgb.train(params, dtrain, num_boost_round=8)


@pytest.fixture
def rows(data: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    rng = np.random.default_rng(11)
    r = rng.normal(size=(50, N_FEATURES)).astype(np.float32)
    r[rng.random(r.shape) < 0.1] = np.nan
    return r


def make_artifact(booster: xgb.Booster, **changes: object) -> ModelArtifact:
    fields: dict[str, object] = {
        "version": "test-1",
        "booster_json": bytes(booster.save_raw("json")),
        "feature_names": FEATURE_NAMES,
        "thresholds": dict(THRESHOLDS),
        "calibration": {"a": 0.8, "b": -0.3},
        "metrics": {"auc": 0.91, "n_rows": np.int64(400), "curve": np.array([0.1, 0.2])},
        "data_hash": data_hash(b"some training rows"),
        "trained_at": "2024-03-04T10:00:00Z",
        "params": {"max_depth": 3, "eta": 0.3},
        "score_distribution": {"edges": [0.0, 0.5, 1.0], "counts": [10.0, 3.0]},
    }
    fields.update(changes)
    return ModelArtifact(**fields)  # type: ignore[arg-type]


def booster_margin(booster: xgb.Booster, rows: np.ndarray) -> np.ndarray:
    dm = xgb.DMatrix(rows, feature_names=list(FEATURE_NAMES))
    return np.asarray(booster.predict(dm, output_margin=True), dtype=np.float64)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


# -- artifact ---------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path, booster: xgb.Booster, rows: np.ndarray) -> None:
    artifact = make_artifact(booster)
    path = artifact.save(tmp_path / "nested" / "dir" / "model.json")
    assert path == tmp_path / "nested" / "dir" / "model.json"
    # The atomic write leaves no temporary file behind.
    assert [p.name for p in path.parent.iterdir()] == ["model.json"]

    loaded = load_artifact(path)
    assert loaded.version == "test-1"
    assert loaded.feature_names == FEATURE_NAMES
    assert loaded.thresholds == THRESHOLDS
    assert loaded.calibration == {"a": 0.8, "b": -0.3}
    assert loaded.metrics == {"auc": 0.91, "n_rows": 400, "curve": [0.1, 0.2]}
    assert loaded.data_hash == data_hash(b"some training rows")
    assert len(loaded.data_hash) == 64
    assert loaded.trained_at == "2024-03-04T10:00:00Z"
    assert loaded.params == {"max_depth": 3, "eta": 0.3}
    assert loaded.score_distribution == {"edges": [0.0, 0.5, 1.0], "counts": [10.0, 3.0]}

    # The reloaded booster predicts exactly what the trained one does.
    again = xgb.Booster()
    again.load_model(bytearray(loaded.booster_json))
    np.testing.assert_array_equal(booster_margin(again, rows), booster_margin(booster, rows))

    # Saving the loaded artifact again gives a file that loads to the same thing.
    second = loaded.save(tmp_path / "second.json")
    assert load_artifact(second) == loaded


def test_save_replaces_an_existing_file(tmp_path: Path, booster: xgb.Booster) -> None:
    path = tmp_path / "model.json"
    make_artifact(booster, version="v1").save(path)
    make_artifact(booster, version="v2").save(path)
    assert load_artifact(path).version == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_artifact_file_is_one_json_document(tmp_path: Path, booster: xgb.Booster) -> None:
    path = make_artifact(booster).save(tmp_path / "m.json")
    doc = orjson.loads(path.read_bytes())
    assert doc["format"] == 1
    assert doc["feature_names"] == list(FEATURE_NAMES)
    assert isinstance(doc["booster"], dict)  # embedded as an object, not a string
    assert "learner" in doc["booster"]


def test_data_hash_is_sha256() -> None:
    assert data_hash(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert data_hash(b"a") != data_hash(b"b")


def test_missing_feature_is_refused(tmp_path: Path, booster: xgb.Booster) -> None:
    names = tuple(n for n in FEATURE_NAMES if n != "amount_zscore")
    path = make_artifact(booster, feature_names=names).save(tmp_path / "m.json")
    with pytest.raises(ArtifactError, match="amount_zscore"):
        load_artifact(path)


def test_unexpected_feature_is_refused(tmp_path: Path, booster: xgb.Booster) -> None:
    path = make_artifact(booster, feature_names=(*FEATURE_NAMES, "shoe_size")).save(
        tmp_path / "m.json"
    )
    with pytest.raises(ArtifactError, match="shoe_size"):
        load_artifact(path)


def test_reordered_features_are_refused(tmp_path: Path, booster: xgb.Booster) -> None:
    names = (FEATURE_NAMES[1], FEATURE_NAMES[0], *FEATURE_NAMES[2:])
    path = make_artifact(booster, feature_names=names).save(tmp_path / "m.json")
    with pytest.raises(ArtifactError, match="order differs: True"):
        load_artifact(path)


def test_expected_features_can_be_given(tmp_path: Path, booster: xgb.Booster) -> None:
    names = FEATURE_NAMES[:3]
    path = make_artifact(booster, feature_names=names).save(tmp_path / "m.json")
    assert load_artifact(path, expected_features=names).feature_names == names


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ArtifactError, match="not found") as info:
        load_artifact(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content", [b"", b"{not json", b'{"format": 1, "version": "x"', b"\x00\xff"]
)
def test_corrupt_json_is_refused(tmp_path: Path, booster: xgb.Booster, content: bytes) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(path)


def test_truncated_artifact_is_refused(tmp_path: Path, booster: xgb.Booster) -> None:
    good = make_artifact(booster).to_bytes()
    path = tmp_path / "m.json"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArtifactError):
        load_artifact(path)


def test_other_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b'{"format": 2, "feature_names": []}')
    with pytest.raises(ArtifactError, match="format 2"):
        load_artifact(path)


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b"null"])
def test_json_that_is_not_an_object_is_refused(tmp_path: Path, content: bytes) -> None:
    # load_artifact means to refuse these with ArtifactError (it checks isinstance(doc,
    # dict)), but its error message calls doc.get() on the non-dict.
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(ArtifactError):
        load_artifact(path)


# -- scorer -----------------------------------------------------------------------------------


def test_score_is_the_calibrated_sigmoid_of_the_margin(
    booster: xgb.Booster, rows: np.ndarray
) -> None:
    scorer = Scorer(make_artifact(booster, calibration={"a": 0.8, "b": -0.3}))
    assert scorer.version == "test-1"
    scores = scorer.score(rows)
    assert scores.shape == (len(rows),)
    assert np.all((scores >= 0) & (scores <= 1))
    margin = booster_margin(booster, rows)
    np.testing.assert_allclose(scores, sigmoid(0.8 * margin - 0.3), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(scorer.margins(rows), margin, rtol=1e-6, atol=1e-6)
    # The calibration really is applied: different from the raw probability.
    assert not np.allclose(scores, sigmoid(margin))


def test_identity_calibration_equals_booster_probability(
    booster: xgb.Booster, rows: np.ndarray
) -> None:
    scorer = Scorer(make_artifact(booster, calibration={"a": 1.0, "b": 0.0}))
    expected = booster.predict(xgb.DMatrix(rows, feature_names=list(FEATURE_NAMES)))
    np.testing.assert_allclose(scorer.score(rows), expected, rtol=1e-5, atol=1e-7)


def test_missing_calibration_defaults_to_identity(booster: xgb.Booster, rows: np.ndarray) -> None:
    scorer = Scorer(make_artifact(booster, calibration={}))
    np.testing.assert_allclose(
        scorer.score(rows), sigmoid(booster_margin(booster, rows)), rtol=1e-6, atol=1e-9
    )


def test_scorer_from_a_loaded_artifact(
    tmp_path: Path, booster: xgb.Booster, rows: np.ndarray
) -> None:
    original = make_artifact(booster)
    loaded = load_artifact(original.save(tmp_path / "m.json"))
    np.testing.assert_array_equal(Scorer(loaded).score(rows), Scorer(original).score(rows))


def test_empty_batch(booster: xgb.Booster) -> None:
    scorer = Scorer(make_artifact(booster))
    empty = np.empty((0, N_FEATURES), dtype=np.float32)
    assert scorer.score(empty).shape == (0,)
    assert scorer.explain(empty) == []


@pytest.mark.parametrize("top_k", [1, 3, 5])
def test_explain_returns_the_largest_contributions_in_order(
    booster: xgb.Booster, rows: np.ndarray, top_k: int
) -> None:
    scorer = Scorer(make_artifact(booster))
    explained = scorer.explain(rows, top_k=top_k)
    contribs = booster.predict(
        xgb.DMatrix(rows, feature_names=list(FEATURE_NAMES)), pred_contribs=True
    )
    assert contribs.shape == (len(rows), N_FEATURES + 1)
    assert len(explained) == len(rows)
    for row, reasons, contrib in zip(rows, explained, contribs, strict=True):
        assert len(reasons) == top_k
        assert all(isinstance(r, Reason) for r in reasons)
        sizes = [abs(r.contribution) for r in reasons]
        assert sizes == sorted(sizes, reverse=True)
        names = [r.feature for r in reasons]
        assert len(set(names)) == top_k
        per_feature = contrib[:-1]
        for r in reasons:
            i = FEATURE_NAMES.index(r.feature)
            assert r.contribution == pytest.approx(float(per_feature[i]), abs=1e-6)
            if np.isnan(row[i]):
                assert r.value is None
            else:
                assert r.value == pytest.approx(float(row[i]))
        # No feature left out has a larger contribution than the smallest one reported.
        rest = [
            abs(float(per_feature[i])) for i in range(N_FEATURES) if FEATURE_NAMES[i] not in names
        ]
        assert max(rest) <= min(sizes) + 1e-6


def test_explain_contributions_and_bias_sum_to_the_margin(
    booster: xgb.Booster, rows: np.ndarray
) -> None:
    scorer = Scorer(make_artifact(booster))
    explained = scorer.explain(rows, top_k=N_FEATURES)
    contribs = booster.predict(
        xgb.DMatrix(rows, feature_names=list(FEATURE_NAMES)), pred_contribs=True
    )
    margin = booster_margin(booster, rows)
    for reasons, contrib, m in zip(explained, contribs, margin, strict=True):
        assert sorted(r.feature for r in reasons) == sorted(FEATURE_NAMES)
        bias = float(contrib[-1])
        total = sum(r.contribution for r in reasons) + bias
        assert total == pytest.approx(float(m), abs=1e-4)
    # At least one row is explained by something other than the bias alone.
    assert any(abs(r.contribution) > 1e-3 for reasons in explained for r in reasons)


def test_reasons_mention_nan_features_as_none(booster: xgb.Booster) -> None:
    row = np.full((1, N_FEATURES), np.nan, dtype=np.float32)
    reasons = Scorer(make_artifact(booster)).explain(row, top_k=N_FEATURES)[0]
    assert all(r.value is None for r in reasons)
    as_dict = reasons[0].to_dict()
    assert set(as_dict) == {"feature", "value", "contribution"}
    assert as_dict["value"] is None
    orjson.dumps([r.to_dict() for r in reasons])  # JSON-serializable
