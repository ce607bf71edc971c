"""Bad rules, list and model files: refused at start, and on reload the running version stays.

Each case of issue 12 (one Latin-1 byte, a UTF-16 byte-order mark, a 400-digit number, a
5,000-deep array, an empty file, ``"feature_names": 5``, a NaN or infinite calibration or
threshold) is refused with the project's own error naming the file. On reload it leaves the
served version in place, logs one ERROR (not one per poll) and counts one failed reload.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from app.serving import ModelWatcher
from models.aml.lists import load_id_list, load_suppressions
from models.aml.rulebook import RulebookError, load_rulebook
from models.aml.runtime import AmlRuntime
from models.artifact import ArtifactError, ModelArtifact, file_stamp, load_artifact
from models.features import N_FEATURES
from models.offline.training import Dataset, train_model
from monitoring.metrics import VigilMetrics
from tests.unit.aml_support import DEFAULT_RULES

DIGITS_400 = "9" * 400
DEEP_5000 = "[" * 5000 + "]" * 5000


def _bump(path: Path, data: bytes, seconds: int) -> None:
    """Write ``data`` and move the mtime on, so a reload sees a new version on any filesystem."""
    path.write_bytes(data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- rules and lists ------------------------------------------------------------------------

RULES = DEFAULT_RULES.read_text()

#: name -> (file content, what the error says)
BAD_RULES: dict[str, tuple[bytes, str]] = {
    "latin1-byte": (
        RULES.encode().replace(b"[[rule]]", b"# r\xe9gle\n[[rule]]", 1),
        "not UTF-8: byte 0xE9",
    ),
    "utf16-bom": (RULES.encode("utf-16"), "UTF-16 byte-order mark"),
    "400-digit-param": (
        RULES.replace("min_count = 3", f"min_count = {DIGITS_400}", 1).encode(),
        "an integer of 400 digits",
    ),
    "400-digit-number-param": (
        RULES.replace("threshold = 10000", f"threshold = {DIGITS_400}", 1).encode(),
        "must be within",
    ),
    "5000-digit-param": (
        RULES.replace("min_count = 3", "min_count = " + "9" * 5000, 1).encode(),
        "not valid TOML",
    ),
    "5000-deep-array": (
        f"x = {DEEP_5000}\n{RULES}".encode(),
        "nested too deep",
    ),
    "empty": (b"", "empty file"),
    "comments-only": (b"# all rules removed\n\n", "empty file"),
    "no-rules": (b"format = 1\n", "no [[rule]] tables"),
}

BAD_LISTS: dict[str, tuple[bytes, str]] = {
    "latin1-byte": (b'accounts = ["caf\xe9"]\n', "not UTF-8: byte 0xE9"),
    "utf16-bom": ('accounts = ["acc-1"]\n'.encode("utf-16"), "UTF-16 byte-order mark"),
    "400-digit": (f"accounts = [{DIGITS_400}]\n".encode(), "an integer of 400 digits"),
    "5000-deep-array": (f"accounts = {DEEP_5000}\n".encode(), "nested too deep"),
    "empty": (b"", "empty file"),
}

BAD_SUPPRESSIONS: dict[str, tuple[bytes, str]] = {
    "400-digit-until": (
        f'[[suppression]]\naccount = "acc-1"\nuntil = {DIGITS_400}\n'.encode(),
        "until: required",
    ),
    "latin1-byte": (b'[[suppression]]\naccount = "caf\xe9"\nuntil = 1\n', "not UTF-8"),
    "empty": (b"", "empty file"),
}

GOOD_LIST = b'accounts = ["acc-1"]\ncounterparties = ["m-1"]\n'
GOOD_SUPPRESSIONS = b'[[suppression]]\naccount = "acc-1"\nuntil = 2026-12-31T00:00:00Z\n'


@pytest.mark.parametrize("case", list(BAD_RULES))
def test_bad_rules_file_is_refused_at_start(tmp_path: Path, case: str) -> None:
    data, message = BAD_RULES[case]
    path = tmp_path / "rules.toml"
    path.write_bytes(data)
    with pytest.raises(RulebookError, match=re.escape(message)) as info:
        load_rulebook(path)
    assert str(info.value).startswith(str(path))
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)
    with pytest.raises(RulebookError, match=re.escape(message)):
        AmlRuntime(path)


@pytest.mark.parametrize("case", list(BAD_LISTS))
def test_bad_list_file_is_refused_at_start(tmp_path: Path, case: str) -> None:
    data, message = BAD_LISTS[case]
    path = tmp_path / "deny.toml"
    path.write_bytes(data)
    with pytest.raises(RulebookError, match=re.escape(message)) as info:
        load_id_list(path)
    assert str(info.value).startswith(str(path))
    with pytest.raises(RulebookError, match=re.escape(message)):
        AmlRuntime(DEFAULT_RULES, None, path, None)


@pytest.mark.parametrize("case", list(BAD_SUPPRESSIONS))
def test_bad_suppressions_file_is_refused_at_start(tmp_path: Path, case: str) -> None:
    data, message = BAD_SUPPRESSIONS[case]
    path = tmp_path / "suppressions.toml"
    path.write_bytes(data)
    with pytest.raises(RulebookError, match=re.escape(message)) as info:
        load_suppressions(path)
    assert str(path) in str(info.value)


def test_a_directory_instead_of_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulebookError, match="cannot read"):
        load_rulebook(tmp_path)


class _Runtime:
    """An AmlRuntime on good files in ``tmp_path``, with its reload failures recorded."""

    def __init__(self, tmp_path: Path) -> None:
        self.paths = {
            "rules": tmp_path / "rules.toml",
            "allowlist": tmp_path / "allow.toml",
            "denylist": tmp_path / "deny.toml",
            "suppressions": tmp_path / "suppressions.toml",
        }
        self.paths["rules"].write_text(RULES)
        self.paths["allowlist"].write_bytes(GOOD_LIST)
        self.paths["denylist"].write_bytes(GOOD_LIST)
        self.paths["suppressions"].write_bytes(GOOD_SUPPRESSIONS)
        self.reloads: list[tuple[str, bool]] = []  # (kind, loaded) as the metrics see them
        p = self.paths
        self.runtime = AmlRuntime(
            p["rules"],
            p["allowlist"],
            p["denylist"],
            p["suppressions"],
            lambda kind, loaded: self.reloads.append((kind, loaded)),
        )

    @property
    def failures(self) -> list[str]:
        return [kind for kind, loaded in self.reloads if not loaded]


@pytest.mark.parametrize(
    ("kind", "case"),
    [("rules", c) for c in BAD_RULES]
    + [(k, c) for k in ("allowlist", "denylist") for c in BAD_LISTS]
    + [("suppressions", c) for c in BAD_SUPPRESSIONS],
)
def test_bad_file_on_reload_keeps_the_running_version_logs_once_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, case: str
) -> None:
    table = {"rules": BAD_RULES, "suppressions": BAD_SUPPRESSIONS}.get(kind, BAD_LISTS)
    data, message = table[case]
    w = _Runtime(tmp_path)
    before = w.runtime.snapshot
    rule_ids = [r.id for r in before.engine.rulebook.rules]
    assert len(rule_ids) == 9 and before.lists.deny.accounts == {"acc-1"}

    path = w.paths[kind]
    _bump(path, data, 5)
    with caplog.at_level(logging.INFO, logger="models.aml.runtime"):
        for _ in range(3):  # three polls of the same bad version: reported once
            assert w.runtime.poll() is False
    assert w.runtime.snapshot is before  # rules and lists as they were
    assert [r.id for r in w.runtime.snapshot.engine.rulebook.rules] == rule_ids
    assert w.failures == [kind]
    (error,) = _errors(caplog)
    assert str(path) in error.getMessage() and message in error.getMessage()
    assert "keeping the previous version" in error.getMessage()

    # Fixed: the next version loads and the failure is not counted again.
    good = RULES.encode() if kind == "rules" else GOOD_SUPPRESSIONS
    _bump(path, good if kind in ("rules", "suppressions") else b"accounts = []\n", 10)
    assert w.runtime.poll() is True
    assert w.reloads == [(kind, False), (kind, True)]  # the refused state ends with it


def test_a_vanished_file_keeps_the_running_version_and_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = _Runtime(tmp_path)
    before = w.runtime.snapshot
    w.paths["rules"].unlink()
    with caplog.at_level(logging.ERROR, logger="models.aml.runtime"):
        assert w.runtime.poll() is False
        assert w.runtime.poll() is False
    assert w.runtime.snapshot is before
    assert w.failures == ["rules"]
    (error,) = _errors(caplog)
    assert str(w.paths["rules"]) in error.getMessage() and "gone" in error.getMessage()
    assert w.runtime._rules.refusing

    # Back in place: reported as loaded, so the alert clears.
    w.paths["rules"].write_text(RULES)
    w.runtime.poll()
    assert w.reloads[-1] == ("rules", True) and not w.runtime._rules.refusing


def test_an_unexpected_loader_error_keeps_the_running_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a loader must not stop the timer (every worker polls the same file)."""
    from models.aml.runtime import Watched

    def broken(path: Path) -> int:
        if path.read_bytes() == b"boom":
            raise KeyError("a bug")
        return 1

    path = tmp_path / "f.toml"
    path.write_bytes(b"ok")
    reloads: list[tuple[str, bool]] = []
    watched = Watched("rules", path, broken, 0, lambda k, ok: reloads.append((k, ok)))
    _bump(path, b"boom", 5)
    with caplog.at_level(logging.ERROR, logger="models.aml.runtime"):
        assert watched.poll() is False
    assert watched.value == 1 and reloads == [("rules", False)] and watched.refusing
    assert "KeyError" in caplog.text


# -- model artifacts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good() -> ModelArtifact:
    """A tiny real model (the label follows feature 0)."""
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


def _edit(change: Callable[[dict[str, object]], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        doc = orjson.loads(data)
        change(doc)
        return json.dumps(doc).encode()  # the stdlib writes NaN and Infinity as given

    return apply


def _set(key: str, value: object) -> Callable[[dict[str, object]], None]:
    return lambda doc: doc.__setitem__(key, value)


#: name -> (good bytes -> bad bytes, what the error says)
BAD_ARTIFACTS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "feature-names-5": (_edit(_set("feature_names", 5)), "feature_names: must be an array"),
    "calibration-nan-string": (
        _edit(_set("calibration", {"a": "nan", "b": 0.0})),
        "calibration.a: must be a number",
    ),
    "calibration-nan": (
        _edit(_set("calibration", {"a": float("nan"), "b": 0.0})),
        "not valid JSON",
    ),
    "calibration-inf": (
        _edit(_set("calibration", {"a": 1.0, "b": float("inf")})),
        "not valid JSON",
    ),
    "calibration-huge": (
        _edit(_set("calibration", {"a": 1.0, "b": "B"})),  # replaced by 1e999 below
        "not valid JSON",
    ),
    "threshold-inf-string": (
        _edit(_set("thresholds", {"HIGH": "inf", "MEDIUM": 0.5, "LOW": 0.2})),
        "thresholds.HIGH: must be a number",
    ),
    "threshold-nan": (
        _edit(_set("thresholds", {"HIGH": float("nan"), "MEDIUM": 0.5, "LOW": 0.2})),
        "not valid JSON",
    ),
    "threshold-out-of-range": (
        _edit(_set("thresholds", {"HIGH": 7.0, "MEDIUM": 0.5, "LOW": 0.2})),
        "thresholds.HIGH: must be within 0..1",
    ),
    "threshold-missing-tier": (
        _edit(_set("thresholds", {"HIGH": 0.9, "MEDIUM": 0.5})),
        "thresholds: must have exactly HIGH, MEDIUM, LOW",
    ),
    "400-digit-threshold": (
        _edit(_set("thresholds", {"HIGH": "D", "MEDIUM": 0.5, "LOW": 0.2})),  # see below
        "not valid JSON",
    ),
    "5000-deep-array": (_edit(_set("metrics", {"deep": "DEEP"})), "not valid JSON"),
    "latin1-byte": (_edit(_set("version", "caf\xe9")), "not valid JSON"),
    "utf16-bom": (lambda data: data.decode().encode("utf-16"), "not valid JSON"),
    "empty": (lambda data: b"", "empty"),
    "booster-not-an-object": (_edit(_set("booster", [1, 2])), "booster: must be an object"),
    "version-not-a-string": (_edit(_set("version", {"v": 1})), "version: must be a non-empty"),
}


def _bad_artifact(good: ModelArtifact, case: str) -> bytes:
    make, _ = BAD_ARTIFACTS[case]
    data = make(good.to_bytes())
    # Values JSON encoders will not write: spliced into the text.
    data = data.replace(b'"B"', b"1e999").replace(b'"D"', DIGITS_400.encode())
    data = data.replace(b'"DEEP"', DEEP_5000.encode())
    if case == "latin1-byte":
        data = data.replace(b"caf\\u00e9", b"caf\xe9")
        assert b"caf\xe9" in data
    return data


def _metrics() -> VigilMetrics:
    return VigilMetrics(CollectorRegistry(auto_describe=True))


def _failures(m: VigilMetrics, kind: str) -> float | None:
    return m.registry.get_sample_value("vigil_reload_failures_total", {"kind": kind})


def _refused(m: VigilMetrics, kind: str) -> float | None:
    """The gauge the VigilFileReloadFailed alert reads."""
    return m.registry.get_sample_value("vigil_file_refused", {"kind": kind})


@pytest.mark.parametrize("case", list(BAD_ARTIFACTS))
def test_bad_artifact_is_refused_at_start(good: ModelArtifact, tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.json"
    path.write_bytes(_bad_artifact(good, case))
    message = BAD_ARTIFACTS[case][1]
    with pytest.raises(ArtifactError, match=re.escape(message)) as info:
        load_artifact(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert len(str(info.value)) < 500
    with pytest.raises(ArtifactError, match=re.escape(message)):
        ModelWatcher(path, None, {}, _metrics())


@pytest.mark.parametrize("case", list(BAD_ARTIFACTS))
def test_bad_artifact_on_reload_keeps_the_model_logs_once_and_counts(
    good: ModelArtifact, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    path = tmp_path / "model.json"
    good.save(path)
    m = _metrics()
    watcher = ModelWatcher(path, None, {}, m)
    served = watcher.current
    assert _failures(m, "model") == 0.0

    _bump(path, _bad_artifact(good, case), 5)
    assert file_stamp(path) is not None
    with caplog.at_level(logging.INFO, logger="app.serving"):
        for _ in range(3):
            assert watcher.check() is False
    assert watcher.current is served
    assert _failures(m, "model") == 1.0 and _refused(m, "model") == 1.0
    (error,) = _errors(caplog)
    assert str(path) in error.getMessage() and BAD_ARTIFACTS[case][1] in error.getMessage()
    assert "still serving" in error.getMessage()

    _bump(path, good.to_bytes(), 10)  # fixed: served, and the alert's gauge clears
    assert watcher.check() is True
    assert _failures(m, "model") == 1.0 and _refused(m, "model") == 0.0


def test_a_vanished_model_file_is_reported_once(
    good: ModelArtifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "model.json"
    good.save(path)
    m = _metrics()
    watcher = ModelWatcher(path, None, {}, m)
    served = watcher.current
    path.unlink()
    with caplog.at_level(logging.ERROR, logger="app.serving"):
        assert watcher.check() is False
        assert watcher.check() is False
    assert watcher.current is served and _failures(m, "model") == 1.0
    (error,) = _errors(caplog)
    assert "not found" in error.getMessage() and _refused(m, "model") == 1.0
    good.save(path)  # back: served again without a restart
    assert watcher.check() is True
    assert _refused(m, "model") == 0.0


def test_a_bad_challenger_is_counted_as_such(good: ModelArtifact, tmp_path: Path) -> None:
    champion, challenger = tmp_path / "model.json", tmp_path / "challenger.json"
    good.save(champion)
    challenger.write_bytes(_bad_artifact(good, "feature-names-5"))
    m = _metrics()
    watcher = ModelWatcher(champion, challenger, {}, m)
    assert watcher.current.challenger is None
    assert _failures(m, "challenger_model") == 1.0 and _failures(m, "model") == 0.0
    assert _refused(m, "challenger_model") == 1.0
    challenger.unlink()  # removed: no challenger is what is asked, nothing is refused
    watcher.check()
    assert _refused(m, "challenger_model") == 0.0
