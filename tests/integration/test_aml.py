"""AML rules end to end: every simulator typology ends up in the right alert topic with its
rule named; allow, deny and suppression lists; rules and lists changed without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from models.aml import load_rulebook
from models.artifact import load_artifact
from models.tiers import escalate, tier_for_score
from tests.integration.aml_support import (
    EXPECTED_RULES,
    build_typologies,
    read_alerts,
    records,
    wait_for_log,
)
from tests.integration.kafka_io import consume, produce
from tests.integration.scenario import BASE_MS

pytestmark = pytest.mark.integration

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "models" / "aml" / "default_rules.toml"


def _payment(tx_id: str, account: str, amount: float, **kw: Any) -> dict[str, Any]:
    return {"tx_id": tx_id, "ts": BASE_MS, "account_id": account, "amount": amount, **kw}


def test_typologies_lists_and_reload(
    broker: Any, worker_env: dict[str, str], start_worker: Any, trained_model: Path, tmp_path: Path
) -> None:
    typ = build_typologies()
    allowed_account = typ.allowed[0].tx["account_id"]
    suppressed_account = typ.suppressed[0].tx["account_id"]
    rules_path = tmp_path / "rules.toml"
    rules_path.write_text(DEFAULT_RULES.read_text())
    allow, deny, sup = tmp_path / "allow.toml", tmp_path / "deny.toml", tmp_path / "sup.toml"
    allow.write_text(f'accounts = ["{allowed_account}"]\n')
    deny.write_text('accounts = ["acc-denied-1"]\n')
    sup.write_text(
        f'[[suppression]]\naccount = "{suppressed_account}"\nuntil = 2099-01-01T00:00:00Z\n'
        'reason = "known benign"\n'
    )
    env = {
        **worker_env,
        "VIGIL_RULES_PATH": str(rules_path),
        "VIGIL_ALLOWLIST_PATH": str(allow),
        "VIGIL_DENYLIST_PATH": str(deny),
        "VIGIL_SUPPRESSIONS_PATH": str(sup),
        "VIGIL_LISTS_RELOAD_S": "0.5",
    }
    worker = start_worker(env)
    denied_tx = _payment("deny-1", "acc-denied-1", 12.5, type="CARD", counterparty_id="m-1")
    batch = [*records(typ.all()), (b"acc-denied-1", orjson.dumps(denied_tx))]
    produce(broker.bootstrap, env["VIGIL_TOPIC_TRANSACTIONS"], batch)

    n_valid = len(batch)
    scored_recs = consume(
        broker.bootstrap, env["VIGIL_TOPIC_SCORED"], lambda recs: len(recs) >= n_valid
    )
    scored = {d["tx_id"]: d for d in (orjson.loads(r.value) for r in scored_recs)}
    assert len(scored) == n_valid == len(scored_recs)  # fan-in adds no scored record
    mule_ids = {r.tx["tx_id"] for r in typ.caught["mule_fan_in"]}

    def complete(found: dict[str, list[tuple[str, dict[str, Any]]]]) -> bool:
        fan_in = {
            a
            for a, alerts in found.items()
            for _, al in alerts
            if a in mule_ids
            for hit in al["rules"]
            if hit["rule_id"] == "fan_in_mule"
        }
        return bool(fan_in) and "deny-1" in found

    alerts = read_alerts(broker.bootstrap, env, complete)
    thresholds = load_artifact(trained_model).thresholds
    rule_tiers = {r.id: r.tier for r in load_rulebook(rules_path).rules} | {"deny_list": "HIGH"}

    for alert_id, copies in alerts.items():
        for topic_tier, alert in copies:
            # The right topic: the model's tier raised by the rules named in the alert.
            assert alert["tier"] == topic_tier
            model_tier = tier_for_score(alert["score"], thresholds)
            expected = escalate(model_tier, [rule_tiers[h["rule_id"]] for h in alert["rules"]])
            assert alert["tier"] == expected, alert
            assert alert["alert_id"] == alert["tx_id"] == alert_id
            for hit in alert["rules"]:
                assert hit["tier"] == rule_tiers[hit["rule_id"]]
                assert any(c.isdigit() for c in hit["explanation"]) or "deny" in hit["rule_id"]

    for pattern, txs in typ.caught.items():
        named = {
            hit["rule_id"]
            for r in txs
            for _, alert in alerts.get(r.tx["tx_id"], [])
            for hit in alert["rules"]
        }
        assert named & EXPECTED_RULES[pattern], f"{pattern}: alerts named {named}"

    # Fan-in: emitted by the counterparty stage as a HIGH alert with the numbers.
    fan_in = [
        alert
        for a in mule_ids
        for tier, alert in alerts.get(a, [])
        if any(h["rule_id"] == "fan_in_mule" for h in alert["rules"])
    ]
    assert fan_in and all(a["tier"] == "HIGH" for a in fan_in)
    assert all(a["features"] and a["transaction"]["tx_id"] == a["tx_id"] for a in fan_in)
    assert any("distinct senders paid" in h["explanation"] for h in fan_in[0]["rules"])

    # Structuring explains itself with the actual numbers.
    structuring = [
        h["explanation"]
        for r in typ.caught["structuring"]
        for _, alert in alerts.get(r.tx["tx_id"], [])
        for h in alert["rules"]
        if h["rule_id"] == "structuring_24h"
    ]
    assert any(" cash deposits between 9,000 and 9,999 in 24 h, total " in e for e in structuring)

    # Lists: allow-listed account scored but never alerted and without rules; suppressed
    # account scored with its rule hit but not alerted; denied account always HIGH.
    for r in typ.allowed:
        assert r.tx["tx_id"] not in alerts and scored[r.tx["tx_id"]]["rules"] == []
    for r in typ.suppressed:
        assert r.tx["tx_id"] not in alerts
        assert [h["rule_id"] for h in scored[r.tx["tx_id"]]["rules"]] == ["high_risk_jurisdiction"]
    (deny_tier, deny_alert), *_ = alerts["deny-1"]
    assert deny_tier == "HIGH" and deny_alert["rules"][0]["rule_id"] == "deny_list"
    assert scored["deny-1"]["tier"] == "HIGH"

    # Change a list and a rule while the worker runs.
    deny.write_text('accounts = ["acc-denied-1", "acc-denied-2"]\n')
    rules_path.write_text(
        DEFAULT_RULES.read_text().replace(
            'id = "round_amount"\nkind = "round_amount"\ndescription = "A high-value transfer'
            ' or withdrawal of a round amount."\ntier = "LOW"',
            'id = "round_amount"\nkind = "round_amount"\ndescription = "A high-value transfer'
            ' or withdrawal of a round amount."\ntier = "HIGH"',
        )
    )
    assert 'tier = "HIGH"' in rules_path.read_text().split('id = "round_amount"')[1][:200]
    wait_for_log(worker, "AML denylist file reloaded")
    wait_for_log(worker, "AML rules file reloaded")
    later = [
        _payment("deny-2", "acc-denied-2", 3.0, type="CARD", counterparty_id="m-2"),
        _payment("round-2", "acc-round-2", 30_000, type="TRANSFER", counterparty_id="cp-r"),
    ]
    produce(
        broker.bootstrap,
        env["VIGIL_TOPIC_TRANSACTIONS"],
        [(t["account_id"].encode(), orjson.dumps(t)) for t in later],
    )
    alerts = read_alerts(
        broker.bootstrap, env, lambda found: "deny-2" in found and "round-2" in found
    )
    (tier, alert), *_ = alerts["deny-2"]
    assert tier == "HIGH" and alert["rules"][0]["rule_id"] == "deny_list"
    (tier, alert), *_ = alerts["round-2"]
    assert tier == "HIGH"
    assert alert["rules"] == [
        {
            "rule_id": "round_amount",
            "tier": "HIGH",
            "explanation": "round amount 30,000 (a multiple of 1,000)",
        }
    ]
    assert "Traceback" not in worker.log()
