"""Durability settings: replication, min.insync.replicas of created topics, producer acks."""

from __future__ import annotations

import pytest

from app.kafka.transport import topic_config
from app.settings import SettingsError, load_settings


@pytest.mark.parametrize(("replication", "min_isr"), [("1", 1), ("2", 1), ("3", 2), ("5", 2)])
def test_min_insync_replicas_follows_the_replication_factor_when_unset(
    replication: str, min_isr: int
) -> None:
    s = load_settings({"VIGIL_REPLICATION_FACTOR": replication})
    assert s.min_insync_replicas is None
    assert s.topic_min_insync_replicas == min_isr


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("3", 3), ("", 2)])
def test_min_insync_replicas_can_be_set(value: str, expected: int) -> None:
    s = load_settings({"VIGIL_REPLICATION_FACTOR": "3", "VIGIL_MIN_INSYNC_REPLICAS": value})
    assert s.topic_min_insync_replicas == expected


@pytest.mark.parametrize(
    "env",
    [
        {"VIGIL_MIN_INSYNC_REPLICAS": "2"},  # above the default replication factor 1
        {"VIGIL_REPLICATION_FACTOR": "3", "VIGIL_MIN_INSYNC_REPLICAS": "4"},
        {"VIGIL_REPLICATION_FACTOR": "3", "VIGIL_MIN_INSYNC_REPLICAS": "0"},
        {"VIGIL_REPLICATION_FACTOR": "3", "VIGIL_MIN_INSYNC_REPLICAS": "-1"},
    ],
)
def test_min_insync_replicas_beyond_the_replicas_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="VIGIL_MIN_INSYNC_REPLICAS must be within 1"):
        load_settings(env)


def test_min_insync_replicas_must_be_a_number() -> None:
    with pytest.raises(SettingsError, match="VIGIL_MIN_INSYNC_REPLICAS='two'"):
        load_settings({"VIGIL_MIN_INSYNC_REPLICAS": "two"})


@pytest.mark.parametrize(("value", "count"), [("all", -1), ("1", 1)])
def test_producer_acks(value: str, count: int) -> None:
    assert load_settings({"VIGIL_PRODUCER_ACKS": value}).producer_acks_count == count


def test_producer_acks_default_to_all() -> None:
    assert load_settings({}).producer_acks_count == -1


@pytest.mark.parametrize("value", ["0", "-1", "ALL", "2", ""])
def test_other_producer_acks_are_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="VIGIL_PRODUCER_ACKS must be 'all' or '1'"):
        load_settings({"VIGIL_PRODUCER_ACKS": value})


def test_created_topics_get_min_insync_replicas_beside_faust_config() -> None:
    s = load_settings({"VIGIL_REPLICATION_FACTOR": "3"})
    assert topic_config(s, None) == {"min.insync.replicas": "2"}
    changelog = {"cleanup.policy": "compact"}
    assert topic_config(s, changelog) == {"min.insync.replicas": "2", "cleanup.policy": "compact"}
    assert changelog == {"cleanup.policy": "compact"}  # not modified in place


def test_a_topic_own_min_insync_replicas_wins() -> None:
    s = load_settings({"VIGIL_REPLICATION_FACTOR": "3"})
    assert topic_config(s, {"min.insync.replicas": "3"}) == {"min.insync.replicas": "3"}


def test_the_app_produces_with_the_configured_acks() -> None:
    from app.kafka.faust_app import VigilApp

    assert VigilApp(load_settings({})).conf.producer_acks == -1
    one = VigilApp(load_settings({"VIGIL_PRODUCER_ACKS": "1", "VIGIL_APP_ID": "acks-one"}))
    assert one.conf.producer_acks == 1
