"""The published JSON Schemas (models/schemas/) agree with the code that reads and writes records.

``jsonschema`` is not a dependency, so a small validator for exactly the keywords the schemas
use lives here. It refuses any other keyword, so a schema cannot silently rely on one it does
not check.
"""

from __future__ import annotations

import itertools
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.features import FEATURE_NAMES, update_account
from models.records import alert_record, challenger_record, rule_hit, scored_record
from models.scorer import Reason
from models.simulator import PATTERNS, Simulator, simulate_history
from models.transaction import ValidationError, transaction_from_dict

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "models" / "schemas"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
START_MS = 1_709_373_600_000  # 2024-03-02T10:00:00Z

# ---------------------------------------------------------------------------------------
# A validator for the subset of JSON Schema 2020-12 the schemas use.

ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description", "examples"})
ASSERTIONS = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "anyOf",
        "oneOf",
    }
)


class SchemaError(Exception):
    """The schema uses something this validator does not implement."""


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if isinstance(value, bool):  # bool is an int in Python, never a number in JSON
        return False
    if name == "number":
        return isinstance(value, int | float)
    if name == "integer":  # JSON Schema: any number with a zero fractional part
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise SchemaError(f"unknown type {name!r}")


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_type(a, "number") and _is_type(b, "number"):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_json_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    # ECMA-262's "$" matches only at the very end; Python's also before a final newline.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise SchemaError(f"only local references are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return dict(node)


def schema_errors(
    instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$"
) -> list[str]:
    """Return every way ``instance`` violates ``schema`` (empty when it is valid)."""
    root = schema if root is None else root
    unknown = set(schema) - ASSERTIONS - ANNOTATIONS
    if unknown:
        raise SchemaError(f"unsupported keyword(s) {sorted(unknown)} at {path}")
    out: list[str] = []
    if "$ref" in schema:
        out += schema_errors(instance, _resolve(root, schema["$ref"]), root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(instance, t) for t in types):
            out.append(f"{path}: {instance!r} is not of type {types}")
    if "enum" in schema and not any(_json_equal(instance, v) for v in schema["enum"]):
        out.append(f"{path}: {instance!r} is not one of {schema['enum']}")
    if "const" in schema and not _json_equal(instance, schema["const"]):
        out.append(f"{path}: {instance!r} is not {schema['const']!r}")
    if _is_type(instance, "number"):
        if "minimum" in schema and instance < schema["minimum"]:
            out.append(f"{path}: {instance!r} < minimum {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            out.append(f"{path}: {instance!r} > maximum {schema['maximum']}")
        if "exclusiveMaximum" in schema and instance >= schema["exclusiveMaximum"]:
            out.append(f"{path}: {instance!r} >= exclusiveMaximum {schema['exclusiveMaximum']}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            out.append(f"{path}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            out.append(f"{path}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not _regex(schema["pattern"]).search(instance):
            out.append(f"{path}: {instance!r} does not match {schema['pattern']!r}")
    if isinstance(instance, dict):
        out += [
            f"{path}: {k!r} is required" for k in schema.get("required", ()) if k not in instance
        ]
        properties = schema.get("properties", {})
        for key, value in instance.items():
            if key in properties:
                out += schema_errors(value, properties[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties", True) is False:
                out.append(f"{path}: unexpected property {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += schema_errors(value, schema["additionalProperties"], root, f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            out += schema_errors(item, schema["items"], root, f"{path}[{i}]")
    if "anyOf" in schema:
        branches = [schema_errors(instance, s, root, path) for s in schema["anyOf"]]
        if all(branches):
            out.append(f"{path}: matches no anyOf branch: {branches}")
    if "oneOf" in schema:
        passed = sum(not schema_errors(instance, s, root, path) for s in schema["oneOf"])
        if passed != 1:
            out.append(f"{path}: matches {passed} oneOf branches, not exactly one")
    return out


def _walk(node: Any, path: str = "$") -> list[str]:
    """Return the paths of subschemas that use a keyword the validator does not know."""
    if not isinstance(node, dict):
        return []
    bad = [f"{path}: {k}" for k in sorted(set(node) - ASSERTIONS - ANNOTATIONS)]
    for key in ("properties", "$defs"):
        for name, sub in node.get(key, {}).items():
            bad += _walk(sub, f"{path}.{key}.{name}")
    for key in ("items", "additionalProperties"):
        bad += _walk(node.get(key), f"{path}.{key}")
    for key in ("anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key, [])):
            bad += _walk(sub, f"{path}.{key}[{i}]")
    return bad


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return ``models/schemas/<name>.schema.json``."""
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return data


@pytest.mark.parametrize(
    ("schema", "instance", "valid"),
    [
        ({"type": "number"}, True, False),
        ({"type": "integer"}, 3.0, True),
        ({"type": "integer"}, 3.5, False),
        ({"const": 1}, True, False),
        ({"const": 1}, 1.0, True),
        ({"enum": [0]}, False, False),
        ({"pattern": "^a$"}, "a\n", False),
        ({"pattern": "b"}, "abc", True),
        ({"minimum": 0}, "-1", True),  # numeric keywords ignore other types
        ({"additionalProperties": {"type": "null"}, "properties": {"a": {}}}, {"a": 1}, True),
        ({"additionalProperties": {"type": "null"}}, {"a": 1}, False),
        ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 1, False),
        ({"anyOf": [{"type": "number"}, {"type": "integer"}]}, 1, True),
        ({"$defs": {"x": {"maxLength": 1}}, "items": {"$ref": "#/$defs/x"}}, ["a", "bc"], False),
    ],
)
def test_the_validator_follows_json_schema(schema: dict[str, Any], instance: Any, valid: bool):
    assert (not schema_errors(instance, schema)) is valid


def test_the_validator_refuses_keywords_it_does_not_implement() -> None:
    with pytest.raises(SchemaError):
        schema_errors(1, {"multipleOf": 2})


# ---------------------------------------------------------------------------------------
# The schema files.


@pytest.mark.parametrize("name", ["transaction", "alert", "scored"])
def test_schema_files_are_complete_and_use_only_checked_keywords(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == DRAFT_2020_12
    assert schema["$id"] and schema["title"] and schema["description"]
    assert schema["type"] == "object"
    assert set(schema["required"]) <= set(schema["properties"])
    assert _walk(schema) == []
    for ref in re.findall(r'"\$ref": "([^"]+)"', json.dumps(schema)):
        _resolve(schema, ref)  # every reference resolves
    if name != "transaction":
        assert schema["properties"]["schema_version"] == {"const": 1}
        assert "schema_version" in schema["required"]


def test_the_schema_examples_are_valid_transactions() -> None:
    schema = load_schema("transaction")
    for example in schema["examples"]:
        assert schema_errors(example, schema) == []
        transaction_from_dict(example)


# ---------------------------------------------------------------------------------------
# Transactions.


def test_every_simulated_transaction_matches_the_schema() -> None:
    schema = load_schema("transaction")
    # The live stream the simulate command sends, and a short history of a small population
    # (a compromised merchant's card abuse takes longer to show up than a few hundred events).
    live = Simulator(seed=5, fraud_rate=0.2).events(START_MS, rate_per_s=50.0)
    history = simulate_history(seed=4, n_accounts=300, days=2, start_ms=START_MS, fraud_rate=0.05)
    records = [*itertools.islice(live, 400), *history]
    assert {r.pattern for r in records} == set(PATTERNS)  # every fraud pattern is covered
    for rec in records:
        doc = orjson.loads(orjson.dumps(rec.tx))  # exactly what the simulate command sends
        assert schema_errors(doc, schema) == [], doc


VALID = {"tx_id": "tx-1", "ts": "2024-03-02T10:00:00Z", "account_id": "acc-1", "amount": 12.5}
_DROP = object()


def _doc(**changes: Any) -> Any:
    doc = dict(VALID)
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        _doc(),
        _doc(amount=0),
        _doc(amount="12.50"),
        _doc(amount="1e3"),
        _doc(ts=START_MS),
        _doc(ts="2024-03-02T11:00:00+01:00"),
        _doc(ts="2024-03-02 10:00Z"),
        _doc(ts="2024-03-02T10:00:00.123456-0530"),
        _doc(currency="eur", type="cash_out"),
        _doc(currency=None, type=None, counterparty_id=None, device_id=None),
        _doc(balance_before="-3.50", balance_after=-10),
        _doc(counterparty_id="", channel="web", country="DE", merchant_category="fuel"),
        _doc(unknown_field={"kept": True}),
    ],
)
def test_the_schema_and_the_worker_accept_the_same_variants(doc: Any) -> None:
    assert schema_errors(doc, load_schema("transaction")) == []
    transaction_from_dict(doc)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (_doc(amount=_DROP), "amount"),
        (_doc(amount=None), "amount"),
        (_doc(amount=-0.01), "amount"),
        (_doc(amount="-5"), "amount"),
        (_doc(amount="12,50"), "amount"),
        (_doc(amount="12.5\n"), "amount"),
        (_doc(amount=True), "amount"),
        (_doc(tx_id=_DROP), "tx_id"),
        (_doc(tx_id="   "), "tx_id"),
        (_doc(tx_id=7), "tx_id"),
        (_doc(account_id="a" * 257), "account_id"),
        (_doc(ts=_DROP), "ts"),
        (_doc(ts="2024-03-02T10:00:00"), "ts"),  # naive: no time zone
        (_doc(ts="2024-03-02"), "ts"),
        (_doc(ts=1_709_373_600), "ts"),  # seconds sent as milliseconds
        (_doc(ts=True), "ts"),
        (_doc(currency="EURO"), "currency"),
        (_doc(type="WIRE"), "type"),
        (_doc(counterparty_id=42), "counterparty_id"),
        (_doc(device_id="d" * 257), "device_id"),
        (_doc(balance_before="n/a"), "balance_before"),
        ([VALID], "payload"),
    ],
)
def test_the_schema_rejects_what_the_worker_dead_letters(doc: Any, field: str) -> None:
    assert schema_errors(doc, load_schema("transaction")) != []
    with pytest.raises(ValidationError) as refused:
        transaction_from_dict(doc)
    assert refused.value.field == field


# ---------------------------------------------------------------------------------------
# Output records.


def _first_transaction() -> Any:
    rec = next(Simulator(seed=3).events(START_MS, rate_per_s=50.0))
    return transaction_from_dict(orjson.loads(orjson.dumps(rec.tx)))


def test_an_alert_matches_the_schema_and_names_every_field() -> None:
    tx = _first_transaction()
    features, _ = update_account(None, tx)  # a first transaction: several features missing
    reasons = [Reason("amount", tx.amount, 1.25), Reason("mean_amount", None, -0.5)]
    rules = [rule_hit("structuring", "HIGH", "3 cash deposits just under 10,000 in 24 h")]
    record = alert_record(tx, 0.93, "HIGH", "sim-0123456789", reasons, rules, features, 1)
    alert = orjson.loads(orjson.dumps(record))  # as a consumer reads it
    schema = load_schema("alert")
    assert schema_errors(alert, schema) == []
    assert set(alert) == set(schema["properties"])
    assert set(alert["features"]) == set(FEATURE_NAMES)
    assert None in alert["features"].values()
    assert alert["alert_id"] == alert["tx_id"] == tx.tx_id

    for bad in ({"tier": "MINIMAL"}, {"score": 1.5}, {"schema_version": 2}, {"event_ts": "x"}):
        assert schema_errors({**alert, **bad}, schema) != [], bad
    broken = {**alert, "reasons": [{"feature": "amount", "value": "12", "contribution": 1}]}
    assert schema_errors(broken, schema) != []


@pytest.mark.parametrize(("tier", "replayed"), [("MINIMAL", False), ("MEDIUM", True)])
def test_a_scored_record_matches_the_schema_and_names_every_field(tier: str, replayed: bool):
    tx = _first_transaction()
    rules = [rule_hit("new-beneficiary", "MEDIUM", "first transfer to this beneficiary")]
    shadow = challenger_record("sim-challenger", 0.35, "LOW")
    record = orjson.loads(
        scored_record(tx, 0.2, tier, "sim-0123456789", rules, 1, replayed, challenger=shadow)
    )
    schema = load_schema("scored")
    assert schema_errors(record, schema) == []
    assert set(record) == set(schema["properties"])
    without = orjson.loads(scored_record(tx, 0.2, tier, "sim-0123456789", rules, 1, replayed))
    assert "challenger" not in without and schema_errors(without, schema) == []
    assert schema_errors({**record, "challenger": {"score": 0.1}}, schema) != []
    assert record["event_ts"] == tx.ts_ms and record["replayed"] is replayed
    assert schema_errors({**record, "tier": "SEVERE"}, schema) != []
    assert schema_errors({**record, "rules": [{"rule_id": "x"}]}, schema) != []
