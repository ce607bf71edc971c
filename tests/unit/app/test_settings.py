"""Settings: every VIGIL_* variable, typed, checked, with working defaults."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from app.settings import (
    DEFAULT_MODEL_PATH,
    Settings,
    SettingsError,
    describe_settings,
    load_settings,
)


def test_defaults_from_an_empty_environment() -> None:
    s = load_settings({})
    assert s == Settings()
    # The contract's defaults (DESIGN.md).
    assert s.broker_url == "kafka://127.0.0.1:9092"
    assert s.web_host == "127.0.0.1"
    assert s.web_port == 6066
    assert s.model_path == DEFAULT_MODEL_PATH
    assert s.topic_transactions == "transactions"
    assert s.topic_deadletter == "transactions.deadletter"
    assert s.topic_scored == "transactions.scored"
    assert s.alert_topics() == {
        "HIGH": "alerts.high",
        "MEDIUM": "alerts.medium",
        "LOW": "alerts.low",
    }
    assert s.topic_labels == "labels"
    assert s.tier_overrides() == {}
    assert s.partitions >= 1
    assert not s.is_embedded_broker


def test_non_vigil_variables_are_ignored() -> None:
    s = load_settings({"PATH": "/bin", "HOME": "/root", "VIGILANT": "x", "vigil_web_port": "1"})
    assert s == Settings()


def test_explicit_environ_does_not_read_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_WEB_PORT", "7777")
    monkeypatch.setenv("VIGIL_NOT_A_SETTING", "1")
    assert load_settings({}).web_port == 6066


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _ in describe_settings():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIGIL_WEB_PORT", "7777")
    assert load_settings().web_port == 7777


def test_typed_parsing(tmp_path: Path) -> None:
    s = load_settings(
        {
            "VIGIL_BROKER_URL": "kafka://broker:29092",
            "VIGIL_BROKER_FLAVOR": "tansu",
            "VIGIL_DATA_DIR": str(tmp_path / "data"),
            "VIGIL_WEB_PORT": "7000",
            "VIGIL_MODEL_PATH": str(tmp_path / "m.json"),
            "VIGIL_PARTITIONS": " 12 ",
            "VIGIL_BATCH_LINGER_MS": "2.5",
            "VIGIL_SESSION_TIMEOUT_S": "10",
            "VIGIL_TIER_HIGH": "0.9",
            "VIGIL_TIER_LOW": "0.25",
            "VIGIL_TOPIC_ALERTS_HIGH": "fraud.alerts.high",
            "VIGIL_LOG_LEVEL": "DEBUG",
        }
    )
    assert s.broker_url == "kafka://broker:29092"
    assert s.is_embedded_broker
    assert s.data_dir == tmp_path / "data"
    assert isinstance(s.data_dir, Path)
    assert s.web_port == 7000
    assert isinstance(s.web_port, int)
    assert s.model_path == tmp_path / "m.json"
    assert s.partitions == 12
    assert s.batch_linger_ms == 2.5
    assert s.session_timeout_s == 10.0
    assert isinstance(s.session_timeout_s, float)
    assert s.tier_high == 0.9
    assert s.tier_medium is None
    assert s.tier_overrides() == {"HIGH": 0.9, "LOW": 0.25}
    assert s.alert_topics()["HIGH"] == "fraud.alerts.high"
    assert s.log_level == "DEBUG"


def test_path_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    s = load_settings({"VIGIL_DATA_DIR": "~/vigil"})
    assert s.data_dir == tmp_path / "vigil"


def test_empty_tier_means_no_override() -> None:
    s = load_settings({"VIGIL_TIER_MEDIUM": "", "VIGIL_TIER_HIGH": "  "})
    assert s.tier_medium is None
    assert s.tier_high is None
    assert s.tier_overrides() == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VIGIL_WEB_PORT", "abc"),
        ("VIGIL_WEB_PORT", "6066.0"),
        ("VIGIL_PARTITIONS", ""),
        ("VIGIL_BATCH_SIZE", "1e3"),
        ("VIGIL_MAX_MESSAGE_BYTES", "64k"),
        ("VIGIL_BATCH_LINGER_MS", "fast"),
        ("VIGIL_BATCH_LINGER_MS", "nan"),
        ("VIGIL_SESSION_TIMEOUT_S", "inf"),
        ("VIGIL_TIER_HIGH", "high"),
        ("VIGIL_TIER_LOW", "NaN"),
    ],
)
def test_bad_number_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert name in str(info.value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VIGIL_WEB_PORT", "0"),
        ("VIGIL_WEB_PORT", "70000"),
        ("VIGIL_PARTITIONS", "0"),
        ("VIGIL_BATCH_SIZE", "-1"),
        ("VIGIL_BATCH_LINGER_MS", "-0.5"),
        ("VIGIL_FANIN_LINGER_MS", "-1"),
        ("VIGIL_FETCH_MAX_WAIT_MS", "0"),
        ("VIGIL_BROKER_FLAVOR", "redpanda"),
        ("VIGIL_LOG_LEVEL", "verbose"),
        ("VIGIL_TIER_LOW", "1.5"),
        ("VIGIL_TIER_HIGH", "-0.1"),
    ],
)
def test_out_of_range_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


@pytest.mark.parametrize("name", ["VIGIL_WEB_PROT", "VIGIL_TIER_MINIMAL", "VIGIL_", "VIGIL_x"])
def test_unknown_vigil_variable_is_refused(name: str) -> None:
    with pytest.raises(SettingsError, match="unknown") as info:
        load_settings({name: "1"})
    assert name in str(info.value)


def test_all_unknown_variables_are_listed() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"VIGIL_B": "1", "VIGIL_A": "1", "VIGIL_WEB_PORT": "1"})
    assert "VIGIL_A, VIGIL_B" in str(info.value)


@pytest.mark.parametrize(
    "env",
    [
        {"VIGIL_TIER_HIGH": "0.5", "VIGIL_TIER_MEDIUM": "0.7"},
        {"VIGIL_TIER_MEDIUM": "0.3", "VIGIL_TIER_LOW": "0.4"},
        {"VIGIL_TIER_HIGH": "0.2", "VIGIL_TIER_LOW": "0.3"},
        {"VIGIL_TIER_HIGH": "0.1", "VIGIL_TIER_MEDIUM": "0.2", "VIGIL_TIER_LOW": "0.3"},
    ],
)
def test_tier_order_is_checked(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="HIGH >= MEDIUM >= LOW"):
        load_settings(env)


@pytest.mark.parametrize(
    "env",
    [
        {"VIGIL_TIER_HIGH": "0.9", "VIGIL_TIER_MEDIUM": "0.6", "VIGIL_TIER_LOW": "0.3"},
        {"VIGIL_TIER_HIGH": "0.5", "VIGIL_TIER_MEDIUM": "0.5"},
        {"VIGIL_TIER_LOW": "0.99"},
        {"VIGIL_TIER_HIGH": "1", "VIGIL_TIER_LOW": "0"},
    ],
)
def test_valid_tier_overrides(env: dict[str, str]) -> None:
    s = load_settings(env)
    assert s.tier_overrides() == {
        name.removeprefix("VIGIL_TIER_"): float(v) for name, v in env.items()
    }


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"VIGIL_PARTITIONS": "0", "VIGIL_LOG_LEVEL": "loud"})
    assert "VIGIL_PARTITIONS" in str(info.value)
    assert "VIGIL_LOG_LEVEL" in str(info.value)


def test_settings_are_immutable() -> None:
    s = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.web_port = 1  # type: ignore[misc]


def test_describe_settings_lists_every_field_with_its_default() -> None:
    described = describe_settings()
    names = [name for name, _ in described]
    fields = dataclasses.fields(Settings)
    assert names == ["VIGIL_" + f.name.upper() for f in fields]
    assert len(set(names)) == len(names)
    table = dict(described)
    assert table["VIGIL_WEB_PORT"] == "6066"
    assert table["VIGIL_WEB_HOST"] == "127.0.0.1"
    assert table["VIGIL_BROKER_URL"] == "kafka://127.0.0.1:9092"
    assert table["VIGIL_MODEL_PATH"] == str(DEFAULT_MODEL_PATH)
    assert table["VIGIL_TOPIC_TRANSACTIONS"] == "transactions"


def test_every_described_variable_is_accepted() -> None:
    # Setting any variable to its documented default changes nothing.
    for name, default in describe_settings():
        if default == "None":  # optional overrides without a default value
            continue
        assert load_settings({name: default}) == Settings(), name


def test_the_advertised_web_url_defaults_to_the_bind_host() -> None:
    assert load_settings({}).web_url == "http://127.0.0.1:6066"
    s = load_settings({"VIGIL_WEB_HOST": "0.0.0.0", "VIGIL_WEB_ADVERTISED_HOST": "worker-1"})
    assert s.web_url == "http://worker-1:6066"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VIGIL_BROKER_URL": ""}, "VIGIL_BROKER_URL is empty"),
        ({"VIGIL_BROKER_URL": "   "}, "VIGIL_BROKER_URL is empty"),
        ({"VIGIL_BROKER_URL": "127.0.0.1:9092"}, "must start with kafka://"),
        ({"VIGIL_BROKER_URL": "http://127.0.0.1:9092"}, "must start with kafka://"),
        ({"VIGIL_BROKER_URL": "kafka://"}, "is not host:port"),
        ({"VIGIL_BROKER_URL": "kafka://:9092"}, "is not host:port"),
        ({"VIGIL_BROKER_URL": "kafka://broker:port"}, "is not host:port"),
        ({"VIGIL_BROKER_URL": "kafka://broker:70000"}, "is not host:port"),
        ({"VIGIL_BROKER_URL": "kafka://h1:9092;;h2:9092"}, "has an empty entry"),
        ({"VIGIL_BROKER_CONNECT_TIMEOUT_S": "0"}, "VIGIL_BROKER_CONNECT_TIMEOUT_S must be > 0"),
        ({"VIGIL_SESSION_TIMEOUT_S": "0"}, "VIGIL_SESSION_TIMEOUT_S must be > 0"),
        ({"VIGIL_SESSION_TIMEOUT_S": "-6"}, "VIGIL_SESSION_TIMEOUT_S must be > 0"),
        ({"VIGIL_HEARTBEAT_INTERVAL_S": "0"}, "VIGIL_HEARTBEAT_INTERVAL_S must be > 0"),
        ({"VIGIL_COMMIT_INTERVAL_S": "-1"}, "VIGIL_COMMIT_INTERVAL_S must be > 0"),
        ({"VIGIL_MODEL_RELOAD_S": "0"}, "VIGIL_MODEL_RELOAD_S must be > 0"),
        (
            {"VIGIL_HEARTBEAT_INTERVAL_S": "6", "VIGIL_SESSION_TIMEOUT_S": "6"},
            "VIGIL_HEARTBEAT_INTERVAL_S must be below VIGIL_SESSION_TIMEOUT_S",
        ),
        (
            {"VIGIL_HEARTBEAT_INTERVAL_S": "10"},
            "VIGIL_HEARTBEAT_INTERVAL_S must be below VIGIL_SESSION_TIMEOUT_S",
        ),
        ({"VIGIL_REASONS_TOP_K": "-1"}, "VIGIL_REASONS_TOP_K must be >= 0"),
        (
            {"VIGIL_TOPIC_SCORED": "transactions"},
            "VIGIL_TOPIC_SCORED and VIGIL_TOPIC_TRANSACTIONS name the same topic",
        ),
        (
            {"VIGIL_TOPIC_DEADLETTER": "in", "VIGIL_TOPIC_TRANSACTIONS": "in"},
            "VIGIL_TOPIC_DEADLETTER and VIGIL_TOPIC_TRANSACTIONS name the same topic",
        ),
        (
            {"VIGIL_TOPIC_ALERTS_HIGH": "transactions"},
            "VIGIL_TOPIC_TRANSACTIONS names an alert topic",
        ),
        ({"VIGIL_TOPIC_SCORED": ""}, "VIGIL_TOPIC_SCORED is empty"),
        ({"VIGIL_TOPIC_ALERTS_LOW": " "}, "VIGIL_TOPIC_ALERTS_LOW is empty"),
        ({"VIGIL_WEB_TOKEN": "   "}, "VIGIL_WEB_TOKEN is blank"),
        ({"VIGIL_WEB_TOKEN": " secret"}, "VIGIL_WEB_TOKEN is blank or has spaces around it"),
    ],
)
def test_invalid_settings_are_refused_with_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(env)


@pytest.mark.parametrize(
    "env",
    [
        {"VIGIL_BROKER_URL": "kafka://h1:9092;h2:9092"},
        {"VIGIL_BROKER_URL": "kafka://h1:9092;kafka://h2:9093"},
        {"VIGIL_BROKER_URL": "kafka://broker"},
        {"VIGIL_BROKER_URL": "aiokafka://10.0.0.1:9092"},
        {"VIGIL_REASONS_TOP_K": "0"},
        {"VIGIL_HEARTBEAT_INTERVAL_S": "2", "VIGIL_SESSION_TIMEOUT_S": "6"},
        {"VIGIL_BROKER_CONNECT_TIMEOUT_S": "0.5"},
        {"VIGIL_WEB_TOKEN": "s3cret"},
        {
            "VIGIL_TOPIC_ALERTS_HIGH": "alerts",
            "VIGIL_TOPIC_ALERTS_MEDIUM": "alerts",
            "VIGIL_TOPIC_ALERTS_LOW": "alerts",
        },
    ],
)
def test_valid_edge_settings_are_accepted(env: dict[str, str]) -> None:
    load_settings(env)
