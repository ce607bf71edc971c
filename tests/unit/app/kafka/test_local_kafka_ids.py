"""The KRaft cluster ids the local Kafka formats its storage with."""

from __future__ import annotations

import base64
import uuid

import pytest

from app.kafka import local_kafka


def test_a_cluster_id_never_starts_like_a_command_line_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The storage tool read an id starting with "-" as an option and the broker never
    # started. Make the first random UUIDs encode to such ids and check they are skipped.
    dash_first = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    plain = uuid.UUID(int=12345)
    drawn = iter([dash_first, dash_first, plain])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))
    cluster_id = local_kafka._cluster_id()
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    assert len(cluster_id) == 22


def test_cluster_ids_are_fresh_and_base64url() -> None:
    ids = {local_kafka._cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
