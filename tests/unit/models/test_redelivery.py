"""Redelivered transactions are recognised by input offset, however many there are."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from models.aml import FanInEngine
from models.aml.engine import CP_SEEN_TX
from models.features import SEEN_TX, AccountState, update_account
from models.offline.replay import Replayer
from models.redelivery import InputPosition, advance, already_applied, mark_applies
from models.transaction import Transaction, transaction_from_dict
from tests.unit.aml_support import only
from tests.unit.aml_support import tx as aml_tx

BASE_MS = 1_709_542_800_000  # 2024-03-04 09:00 UTC
TOPIC = "transactions"


def tx(i: int) -> Transaction:
    return transaction_from_dict(
        {"tx_id": f"t{i}", "ts": BASE_MS + i * 60_000, "account_id": "acc", "amount": 10 + i}
    )


def run(
    txs: Sequence[tuple[Transaction, InputPosition | None]], state: AccountState | None = None
) -> AccountState:
    for t, pos in txs:
        _, state = update_account(state, t, None, pos)
    assert state is not None
    return state


def at(offset: int, end: int | None = 10_000, topic: str = TOPIC) -> InputPosition:
    return InputPosition(topic, offset, end)


def test_a_redelivery_longer_than_the_tx_id_memory_counts_once() -> None:
    n = SEEN_TX + 8  # 40: the last 32 ids alone let 8 of them count twice
    first = [(tx(i), at(100 + i)) for i in range(n)]
    state = run(first)
    assert state.n == n
    once = state.to_bytes()
    state = run(first, state)  # a crash before the commit: all of it again
    assert state.n == n
    assert state.to_bytes() == once


def test_the_same_redelivery_without_offsets_double_counts_the_part_ids_forgot() -> None:
    # The failure the offsets fix (and what an offline replay without positions still does).
    # Each forgotten id counts again and pushes the next one out of the memory: all of them.
    first = [(tx(i), None) for i in range(SEEN_TX + 8)]
    state = run(first + first)
    assert state.n == 2 * (SEEN_TX + 8)


def test_a_redelivery_continues_into_new_transactions_which_count() -> None:
    state = run([(tx(i), at(i)) for i in range(50)])
    state = run([(tx(i), at(i)) for i in range(20, 60)], state)  # 30 again, 10 new
    assert state.n == 60
    assert state.offsets == {TOPIC: 59}


def test_each_input_topic_has_its_own_mark() -> None:
    state = run([(tx(i), at(i)) for i in range(5)])
    # The re-keyed topic's offsets are its own: offset 2 there is a new transaction.
    state = run([(tx(100), at(2, topic="transactions.by-account"))], state)
    assert state.n == 6
    assert state.offsets == {TOPIC: 4, "transactions.by-account": 2}


def test_a_mark_beyond_the_log_end_is_from_a_recreated_topic_and_is_dropped() -> None:
    state = run([(tx(i), at(5000 + i)) for i in range(3)])
    assert state.offsets == {TOPIC: 5002}
    # The topic was recreated: its log ends at 40, offsets start again at 0.
    state = run([(tx(1000 + i), at(i, end=40)) for i in range(3)], state)
    assert state.n == 6
    assert state.offsets == {TOPIC: 2}


def test_an_unknown_log_end_trusts_the_mark() -> None:
    state = run([(tx(i), at(i)) for i in range(40)])
    state = run([(tx(i), at(i, end=None)) for i in range(40)], state)
    assert state.n == 40


def test_the_same_transaction_at_a_new_offset_is_still_a_replay_by_id() -> None:
    state = run([(tx(1), at(7))])
    state = run([(tx(1), at(8))], state)  # a producer that sent it twice
    assert state.n == 1


def test_mark_applies_only_while_the_log_reaches_it() -> None:
    assert mark_applies(9, at(3, end=10))
    assert not mark_applies(10, at(3, end=10))
    assert mark_applies(10**9, at(3, end=None))
    assert not mark_applies(None, at(3))


def test_already_applied_and_advance_decide_from_marks_ids_and_position() -> None:
    marks: dict[str, int] = {}
    assert not already_applied(marks, [], 1, at(5))
    advance(marks, at(5))
    assert already_applied(marks, [], 2, at(5))
    assert already_applied(marks, [], 2, at(4))
    assert not already_applied(marks, [], 2, at(6))
    assert already_applied(marks, [2], 2, at(6))
    assert not already_applied(marks, [], 2, None)
    advance(marks, at(3))  # never moves back
    assert marks == {TOPIC: 5}
    advance(marks, at(3, end=4))  # stale: the new topic's offset replaces it
    assert marks == {TOPIC: 3}


def test_a_state_of_the_previous_format_reads_with_no_marks() -> None:
    state = run([(tx(i), None) for i in range(3)])
    doc = json.loads(state.to_bytes())
    old = json.dumps([3, *doc[1:-1]]).encode()
    restored = AccountState.from_bytes(old)
    assert restored.offsets == {} and restored.n == 3


def test_the_offline_replay_is_the_streams_function_without_positions() -> None:
    replayer = Replayer(label_delay_ms=None)
    for i in range(3):
        replayer.step(tx(i))
    assert replayer.step(tx(1)).replayed
    streamed = run([(tx(i), None) for i in range(3)])
    assert replayer.accounts["acc"] == streamed


def test_the_fan_in_state_counts_a_long_redelivery_once() -> None:
    fanin = FanInEngine(only("fan_in_mule"))
    txs = [
        aml_tx(f"s{i % 3}", BASE_MS + i * 1000, 400, type="TRANSFER", counterparty_id="mule")
        for i in range(CP_SEEN_TX + 10)
    ]
    state: list[Any] = []
    for i, t in enumerate(txs):
        _, state = fanin.evaluate(state, t, None, at(i))
    once = json.dumps(state)
    for i, t in enumerate(txs):  # redelivered after a crash, all of it
        assert fanin.is_replay(state, t, at(i))
        _, state = fanin.evaluate(state, t, fanin.is_replay(state, t, at(i)), at(i))
    assert json.dumps(state) == once
    # Without positions (ids only) the payments the memory forgot count again.
    for t in txs:
        _, state = fanin.evaluate(state, t)
    assert json.dumps(state) != once


def test_a_fan_in_state_without_marks_reads_as_before() -> None:
    fanin = FanInEngine(only("fan_in_mule"))
    t = aml_tx("s1", BASE_MS, 400, type="TRANSFER", counterparty_id="mule")
    _, state = fanin.evaluate([], t)
    old = state[:4]  # written before the offsets
    assert fanin.is_replay(old, t, at(5))
    assert not fanin.is_replay(old, aml_tx("s2", BASE_MS, 400, counterparty_id="mule"), at(6))
    _, state = fanin.evaluate(old, aml_tx("s2", BASE_MS, 400, counterparty_id="mule"), None, at(6))
    assert state[4] == {TOPIC: 6}
