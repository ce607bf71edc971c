"""The library internals Vigil uses still exist, with the shape app/internals expects.

Every entry of ``app.internals.REGISTRY`` is checked on the installed (pinned) versions: a
library upgrade that drops or changes one fails here, naming the internal and the module of
``app/internals`` to revisit. The registry itself is checked against the code: every private
name an ``app.internals`` module touches has an entry, and no module outside it touches one.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import app.internals
from app.internals import MODULES, REGISTRY, Internal, faust_consumer
from app.kafka.batch_delivery import RecordBatch

ROOT = Path(__file__).resolve().parents[4]
#: The source packages whose modules may not touch a library's private names.
SOURCES = ("app", "agents", "tables", "monitoring", "models")
INTERNALS_DIR = ROOT / "app" / "internals"
#: Private-looking names that are public API: namedtuple's ``_replace``, ``os._exit``.
PUBLIC_UNDERSCORED = frozenset({"_replace", "_exit"})


def home_file(entry: Internal) -> str:
    return entry.home.replace(".", "/") + ".py"


def resolve(owner: str) -> Any:
    """Import ``module:Qual.name`` (or a module) and return the object."""
    module_name, _, qualname = owner.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


def parameters(func: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(func).parameters)


def sha256_of_source(func: Any) -> str:
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()


def shape_problems(entry: Internal, instance: Any = None) -> list[str]:
    """Return what no longer matches ``entry`` (empty when the internal is as expected)."""
    try:
        owner = resolve(entry.owner)
    except (ImportError, AttributeError) as exc:
        return [f"its owner {entry.owner} is gone ({exc})"]
    problems = []
    if entry.kind == "attribute":
        if instance is None:
            problems.append("no real instance to look on (add one to instances())")
        elif not isinstance(instance, owner):
            problems.append(f"the instance checked is a {type(instance).__name__}")
        elif not hasattr(instance, entry.name):
            problems.append("is gone")
        return problems
    if not hasattr(owner, entry.name):
        return ["is gone"]
    value = getattr(owner, entry.name)
    if entry.kind in ("method", "routine"):
        if not callable(value):
            return ["is no longer callable"]
        got = parameters(value)
        if got != entry.params:
            problems.append(f"takes {got}, not {entry.params}")
    if entry.source_sha256:
        got_sha = sha256_of_source(value)
        if got_sha != entry.source_sha256:
            problems.append(f"changed its source (sha256 {got_sha}, pinned {entry.source_sha256})")
    for caller in entry.called_from:
        if f"self.{entry.name}(" not in inspect.getsource(getattr(owner, caller)):
            problems.append(f"is no longer called from {caller}")
    return problems


def failure(entry: Internal, problems: list[str]) -> str:
    return f"{entry} {'; '.join(problems)}: see {home_file(entry)}"


async def instances() -> dict[str, Any]:
    """Real instances of each owner with attribute internals, by owner."""
    import aiokafka

    from app import app as faust_app
    from tables.accounts import accounts_table

    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="localhost:9")
    return {
        "faust.transport.consumer:Consumer": faust_app.consumer,
        "mode.services:Service": faust_app.consumer,
        "faust.channels:Channel": faust_app.channel(),
        "asyncio:Queue": asyncio.Queue(),
        "faust.stores.rocksdb:Store": accounts_table.data,
        "aiokafka.consumer.consumer:AIOKafkaConsumer": consumer,
        "aiokafka.client:AIOKafkaClient": consumer._client,
    }


@pytest.mark.parametrize("entry", [e for e in REGISTRY if e.kind != "attribute"], ids=str)
def test_every_private_method_routine_and_module_name_keeps_its_shape(entry: Internal) -> None:
    problems = shape_problems(entry)
    assert not problems, failure(entry, problems)


async def test_every_private_attribute_is_on_a_real_instance() -> None:
    real = await instances()
    failures = [
        failure(entry, problems)
        for entry in REGISTRY
        if entry.kind == "attribute" and (problems := shape_problems(entry, real.get(entry.owner)))
    ]
    assert not failures, "\n".join(failures)


async def test_batch_acks_on_a_real_faust_consumer_match_its_bookkeeping() -> None:
    from faust.types import TP

    from app import app as faust_app

    consumer = faust_app.consumer
    tp = TP("contract-probe", 0)
    item = RecordBatch([], {})  # Faust keeps unacknowledged messages in a WeakSet
    faust_consumer.add_unacked(consumer, item)
    assert item in faust_consumer.unacked_messages(consumer)
    with faust_consumer.ack_lock():
        n = faust_consumer.record_acks(consumer, {tp: [3, 4, 4]}, lambda topic: True)
        faust_consumer.discard_unacked(consumer, item)
    assert n == 2
    assert faust_consumer.acked_offsets(consumer)[tp] == [3, 4]
    assert faust_consumer.committed_offsets(consumer)[tp] is None
    assert faust_consumer.read_offsets(consumer)[tp] is None
    assert item not in faust_consumer.unacked_messages(consumer)
    assert faust_consumer.take_commit_due(consumer, 1)
    assert faust_consumer.acks_since_commit(consumer) == 0


def test_a_changed_internal_fails_with_the_module_to_revisit() -> None:
    gone = Internal("faust-streaming", faust_consumer.CONSUMER, "_no_such", "method", "", "x.y")
    assert shape_problems(gone) == ["is gone"]
    assert failure(gone, ["is gone"]) == ("faust-streaming Consumer._no_such is gone: see x/y.py")
    drain = next(e for e in REGISTRY if e.name == "_drain_messages")
    edited = Internal(**{**drain.__dict__, "source_sha256": "0" * 64})
    assert "changed its source" in shape_problems(edited)[0]
    renamed = Internal(**{**drain.__dict__, "params": ("self", "fetch")})
    assert shape_problems(renamed)[0].startswith("takes ('self', 'fetcher')")
    missing = Internal(**{**drain.__dict__, "kind": "attribute", "source_sha256": ""})
    assert shape_problems(missing, object()) == ["the instance checked is a object"]


def test_the_registry_names_each_internal_once_in_the_module_that_uses_it() -> None:
    keys = [(e.owner, e.name) for e in REGISTRY]
    assert len(keys) == len(set(keys)), "an internal is named twice"
    found = {f"app.internals.{m.name}" for m in pkgutil.iter_modules(app.internals.__path__)} - {
        "app.internals.registry"
    }
    assert found == {m.__name__ for m in MODULES}, "a module of app/internals is not in MODULES"
    for module in MODULES:
        assert module.INTERNALS, f"{module.__name__} lists no internals"
        assert {e.home for e in module.INTERNALS} == {module.__name__}
        assert all(e.why for e in module.INTERNALS)


def private_attributes(tree: ast.AST) -> Iterator[tuple[ast.Attribute, str]]:
    """Yield ``x._name`` accesses, with ``x`` as written (``self``, ``super()``, ...)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and re.fullmatch(r"_[a-z]\w*", node.attr)
            and node.attr not in PUBLIC_UNDERSCORED
        ):
            yield node, ast.unparse(node.value)


def test_every_private_name_an_internals_module_touches_has_a_contract_entry() -> None:
    registered = {e.name for e in REGISTRY}
    for path in sorted(INTERNALS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        touched = {node.attr for node, _ in private_attributes(tree)}
        assert touched <= registered, f"{path.name} touches {touched - registered} unregistered"


def source_files() -> Iterator[Path]:
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if INTERNALS_DIR not in path.parents:
                yield path


def own_private_names() -> set[str]:
    """Private names Vigil's own code defines (functions, methods, attributes, globals)."""
    names: set[str] = set()
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {n for n in names if n.startswith("_")}


def test_no_module_outside_app_internals_touches_a_library_private_name() -> None:
    registered = {e.name for e in REGISTRY}
    overridable = {e.name for e in REGISTRY if e.kind in ("method", "routine")}
    own = own_private_names()
    offences = []
    for path in source_files():
        tree = ast.parse(path.read_text())
        where = path.relative_to(ROOT)
        for node, receiver in private_attributes(tree):
            own_object = receiver in ("self", "cls")
            if node.attr in registered and not own_object:
                offences.append(f"{where}:{node.lineno} {receiver}.{node.attr} (registered)")
            elif node.attr not in own and not own_object:
                offences.append(f"{where}:{node.lineno} {receiver}.{node.attr}")
            elif own_object and node.attr not in own:
                offences.append(f"{where}:{node.lineno} {receiver}.{node.attr} (inherited)")
        for defined in ast.walk(tree):
            if (
                isinstance(defined, ast.FunctionDef | ast.AsyncFunctionDef)
                and defined.name in overridable
            ):
                offences.append(f"{where}:{defined.lineno} overrides {defined.name}")
    assert not offences, "use app.internals instead:\n" + "\n".join(offences)


def test_every_accessor_says_why() -> None:
    for module in MODULES:
        public: list[Callable[..., Any]] = [
            obj
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and inspect.isfunction(obj)
            and obj.__module__ == module.__name__
        ]
        for func in public:
            assert inspect.getdoc(func), f"{module.__name__}.{func.__name__} has no docstring"
