"""Per-counterparty risk from delayed labels: labelled transactions and confirmed frauds.

Labels arrive days after the transaction (chargebacks, analyst verdicts). Each one is counted
in the UTC day it *arrived* (``Label.ts``), because that is when the system learns it: a
feature at time ``t`` may only use labels that arrived by ``t``. The streaming labels agent
and the offline replay (training, backtest) both call :func:`apply_label`, and the features
come from :func:`risk_features`, called by :func:`models.features.update_account`.

"Transactions" here means *labelled* transactions (fraud or legit verdicts): the labels stream
is the only input keyed by counterparty without another hop per transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from models import windows
from models.transaction import tx_hash

RISK_FORMAT = 1
DAY_MS = 86_400_000
SLOTS_DAYS = 30
#: Verdicts remembered per counterparty, so a repeated label is not counted twice and a
#: changed verdict moves its count instead of adding one.
MAX_REMEMBERED = 256
NAN = float("nan")

RISK_FEATURE_NAMES: tuple[str, ...] = (
    "cp_fraud_rate_1d",
    "cp_fraud_rate_7d",
    "cp_fraud_rate_30d",
    "cp_frauds_30d",
)
WINDOWS_DAYS = (1, 7, 30)


@dataclass(slots=True)
class CounterpartyRisk:
    """Day buckets ``[day, labelled, frauds]`` (ascending) and remembered verdicts.

    ``verdicts`` holds ``[tx hash, day, fraud 0/1]`` of the most recent labels.
    """

    days: list[list[int]] = field(default_factory=list)
    verdicts: list[list[int]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """Serialize to the table's value format."""
        return orjson.dumps([RISK_FORMAT, self.days, self.verdicts])

    @classmethod
    def from_bytes(cls, data: bytes) -> CounterpartyRisk:
        """Deserialize a value written by :meth:`to_bytes`."""
        v = orjson.loads(data)
        if v[0] != RISK_FORMAT:
            raise ValueError(f"counterparty risk format {v[0]} is not {RISK_FORMAT}")
        return cls(v[1], v[2])

    def counts(self, ts_ms: int, window_days: int) -> tuple[int, int]:
        """Return ``(labelled, frauds)`` of labels that arrived in the window ending at ``ts``."""
        labelled, frauds = windows.sums(self.days, ts_ms // DAY_MS, window_days, 2)
        return int(labelled), int(frauds)


def apply_label(
    risk: CounterpartyRisk | None, tx_id: str, is_fraud: bool, label_ts_ms: int
) -> tuple[CounterpartyRisk, bool]:
    """Count one label; return the state and whether it changed anything.

    The same verdict twice is a no-op (at-least-once delivery); a different verdict for a
    remembered transaction moves the count to the new verdict, in its original day.
    """
    st = risk if risk is not None else CounterpartyRisk()
    h = tx_hash(tx_id)
    fraud = 1 if is_fraud else 0
    for verdict in st.verdicts:
        if verdict[0] == h:
            if verdict[2] == fraud:
                return st, False
            # Its day may have left the 30 days kept: then there is no count to move, and
            # ``add`` keeps no bucket older than the window (a re-created one would hold 0
            # labelled and -1 frauds).
            if st.days:
                windows.add(st.days, verdict[1], (0, fraud - verdict[2]), SLOTS_DAYS)
            verdict[2] = fraud
            return st, True
    day = label_ts_ms // DAY_MS
    windows.add(st.days, day, (1, fraud), SLOTS_DAYS)
    st.verdicts.append([h, day, fraud])
    if len(st.verdicts) > MAX_REMEMBERED:
        del st.verdicts[0]
    return st, True


def risk_features(risk: CounterpartyRisk | None, ts_ms: int) -> list[float]:
    """Return the counterparty features of a transaction at ``ts_ms`` (NaN when unknown).

    A rate is NaN while no label arrived in its window: "no evidence" is not "no fraud".
    """
    if risk is None:
        return [NAN, NAN, NAN, NAN]
    out: list[float] = []
    frauds_30 = 0
    for days in WINDOWS_DAYS:
        labelled, frauds = risk.counts(ts_ms, days)
        out.append(frauds / labelled if labelled else NAN)
        frauds_30 = frauds
    out.append(float(frauds_30))
    return out
