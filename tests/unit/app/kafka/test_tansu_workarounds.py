"""The one switch of the tansu workarounds: off on Apache Kafka, logged once each on tansu."""

from __future__ import annotations

import logging

import pytest

from app.kafka.tansu_compat import WORKAROUNDS, Workarounds


def test_no_workaround_is_taken_when_off(caplog: pytest.LogCaptureFixture) -> None:
    off = Workarounds(enabled=False)
    with caplog.at_level(logging.INFO, logger="app.kafka.tansu_compat"):
        assert [off.use(name) for name in WORKAROUNDS] == [False] * len(WORKAROUNDS)
    assert off.used == set()
    assert "tansu workaround" not in caplog.text


def test_each_workaround_taken_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    on = Workarounds(enabled=True)
    with caplog.at_level(logging.INFO, logger="app.kafka.tansu_compat"):
        for _ in range(3):
            assert all(on.use(name) for name in WORKAROUNDS)
    assert on.used == set(WORKAROUNDS)
    lines = [r.getMessage() for r in caplog.records]
    assert sorted(lines) == sorted(f"tansu workaround on: {name}" for name in WORKAROUNDS)


@pytest.mark.parametrize("enabled", [False, True])
def test_an_unknown_workaround_is_a_programming_error(enabled: bool) -> None:
    with pytest.raises(ValueError, match="unknown tansu workaround"):
        Workarounds(enabled).use("no such quirk")


@pytest.mark.parametrize(("flavor", "enabled"), [("kafka", False), ("tansu", True)])
def test_the_app_switches_them_by_broker_flavor(flavor: str, enabled: bool) -> None:
    from app.kafka.faust_app import create_app
    from app.settings import Settings

    app = create_app(Settings(broker_flavor=flavor, app_id=f"unit-{flavor}"))
    assert app.tansu.enabled is enabled
