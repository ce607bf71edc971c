"""Cost of the pure feature code: microseconds per transaction and state bytes per account.

Replays a simulated history (validated up front, not timed) through
:func:`models.features.update_account` in event-time order, from empty states, the way
training and the stream call it, and prints:

* us/tx: the best of ``--rounds`` full replays (timeit's rule: the minimum is the run least
  disturbed by the rest of the machine), and the median, in CPU time of this process
  (``time.process_time``: on a shared machine the wall clock also counts the time other
  processes had the core), and the best in wall time;
* the state of each account at the end, serialized as the table stores it
  (:meth:`AccountState.to_bytes`): p50, p99 and max bytes.

Usage: ``python bench/feature_cost.py [--accounts 1000] [--days 30] [--rounds 5] [--seed 7]``.
Thirty days fill the longest window, so the state sizes are those of a long-lived account.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.features import AccountState, update_account  # noqa: E402
from models.offline.training import DEFAULT_START_MS  # noqa: E402
from models.simulator import simulate_history  # noqa: E402
from models.transaction import Transaction, transaction_from_dict  # noqa: E402


def load(seed: int, accounts: int, days: float) -> list[Transaction]:
    """Return a simulated history as validated transactions in event-time order."""
    history = simulate_history(seed, accounts, days, DEFAULT_START_MS)
    txs = [transaction_from_dict(rec.tx) for rec in history]
    txs.sort(key=lambda t: t.ts_ms)
    return txs


def replay(txs: list[Transaction]) -> tuple[float, float, dict[str, AccountState]]:
    """Replay ``txs`` from empty states; return CPU and wall seconds, and the final states."""
    states: dict[str, AccountState] = {}
    get = states.get
    cpu, wall = time.process_time(), time.perf_counter()
    for tx in txs:
        _, states[tx.account_id] = update_account(get(tx.account_id), tx)
    return time.process_time() - cpu, time.perf_counter() - wall, states


def main() -> None:
    """Run the replays and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    txs = load(args.seed, args.accounts, args.days)
    cpu_s: list[float] = []
    wall_s: list[float] = []
    states: dict[str, AccountState] = {}
    for _ in range(args.rounds):
        cpu, wall, states = replay(txs)
        cpu_s.append(cpu)
        wall_s.append(wall)
    per_tx_us = [s / len(txs) * 1e6 for s in cpu_s]
    sizes = np.asarray([len(s.to_bytes()) for s in states.values()], dtype=np.float64)
    print(f"{len(txs)} transactions, {len(states)} accounts, {args.days:g} days, seed {args.seed}")
    print(
        f"update_account: best {min(per_tx_us):.2f} us/tx CPU, "
        f"median {statistics.median(per_tx_us):.2f} us/tx CPU over {args.rounds} rounds "
        f"(best wall {min(wall_s) / len(txs) * 1e6:.2f} us/tx)"
    )
    print(
        f"state bytes/account: p50 {np.percentile(sizes, 50):.0f}, "
        f"p99 {np.percentile(sizes, 99):.0f}, max {sizes.max():.0f}"
    )


if __name__ == "__main__":
    main()
