"""A worker that cannot do its job exits at once with one line; a live one survives bad files.

Real ``faust -A app worker`` processes: without a model, with a broken model or rules file,
with nothing listening at the broker URL, with an invalid setting. Each exits non-zero with
one CRITICAL (or ``vigil:``) line that names the problem, and no traceback. A running worker
whose rules and model files are replaced by broken ones keeps scoring with the versions it
had and shows the failed reloads in ``/metrics``. Custom commands print user errors as one
line too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.kafka.embedded_broker import free_port
from tests.integration.aml_support import wait_for_log
from tests.integration.kafka_io import consume, produce
from tests.integration.worker import run_faust
from tests.unit.aml_support import DEFAULT_RULES

#: Start checks, exit codes and file reloads do not depend on the broker's flavour: tansu only.
pytestmark = pytest.mark.brokers("tansu")

#: Guards the test run only (a worker that hangs fails the test instead of blocking it).
GUARD_S = 180.0


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    return run_faust(args, env, GUARD_S)


def _the_one_line(output: str, marker: str) -> str:
    """Return the only line containing ``marker``; fail on a traceback or several lines."""
    assert "Traceback" not in output, output[-4000:]
    lines = [line for line in output.splitlines() if marker in line]
    assert len(lines) == 1, output[-4000:]
    return lines[0]


def _worker_exit(env: dict[str, str]) -> tuple[int, str]:
    return _run(["worker", "-l", "info"], env)


def test_worker_without_a_model_exits_78_with_one_line(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-model.json"
    code, out = _worker_exit({**worker_env, "VIGIL_MODEL_PATH": str(missing)})
    assert code == 78, out[-4000:]
    line = _the_one_line(out, "[CRITICAL]")
    assert f"cannot start: model artifact {missing} not found" in line
    assert "faust -A app train" in line  # what to do
    assert "[^Worker]: Ready" not in out


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b'{"format": 1, "version": "x", "thresholds": {}, "booster": {}, "feature_names": 5}',
            "feature_names: must be an array of strings",
        ),
        (b"", "is empty"),
    ],
    ids=["feature-names-5", "empty"],
)
def test_worker_with_a_broken_model_exits_78_with_one_line(
    worker_env: dict[str, str], tmp_path: Path, content: bytes, problem: str
) -> None:
    model = tmp_path / "broken.json"
    model.write_bytes(content)
    code, out = _worker_exit({**worker_env, "VIGIL_MODEL_PATH": str(model)})
    assert code == 78, out[-4000:]
    line = _the_one_line(out, "[CRITICAL]")
    assert f"cannot start: model artifact {model}" in line and problem in line


def test_worker_with_an_empty_rules_file_exits_78_with_one_line(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_bytes(b"")
    code, out = _worker_exit({**worker_env, "VIGIL_RULES_PATH": str(rules)})
    assert code == 78, out[-4000:]
    line = _the_one_line(out, "[CRITICAL]")
    assert f"cannot start: {rules}: empty file" in line


def test_worker_with_an_unreachable_broker_exits_69_naming_the_url(
    worker_env: dict[str, str],
) -> None:
    port = free_port()  # nothing listens there
    url = f"kafka://127.0.0.1:{port}"
    env = {**worker_env, "VIGIL_BROKER_URL": url, "VIGIL_BROKER_CONNECT_TIMEOUT_S": "2"}
    code, out = _worker_exit(env)
    assert code == 69, out[-4000:]
    line = _the_one_line(out, "[CRITICAL]")
    assert f"cannot reach the Kafka broker at {url} within 2 s" in line
    assert "VIGIL_BROKER_URL" in line
    assert "Unable connect" not in out  # the client's per-attempt errors are held back


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"VIGIL_BROKER_URL": ""}, "VIGIL_BROKER_URL is empty"),
        ({"VIGIL_HEARTBEAT_INTERVAL_S": "6"}, "must be below VIGIL_SESSION_TIMEOUT_S"),
        ({"VIGIL_TOPIC_SCORED": "__input__"}, "name the same topic"),
    ],
    ids=["empty-url", "heartbeat", "topics"],
)
def test_worker_with_an_invalid_setting_exits_78_with_one_line(
    worker_env: dict[str, str], env: dict[str, str], problem: str
) -> None:
    overrides = {
        k: (worker_env["VIGIL_TOPIC_TRANSACTIONS"] if v == "__input__" else v)
        for k, v in env.items()
    }
    code, out = _worker_exit({**worker_env, **overrides})
    assert code == 78, out[-4000:]
    line = _the_one_line(out, "vigil: invalid settings:")
    assert problem in line
    assert out.strip() == line.strip()  # nothing else: not even Faust's banner


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["backtest", "--data", "{tmp}/missing.jsonl", "--model", "{model}"], "no such file"),
        (["backtest", "--data", "{tmp}/missing.jsonl", "--model", "{tmp}/m.json"], "not found"),
        (["train", "--data", "{tmp}/missing.csv", "--output", "{tmp}/out.json"], "no such file"),
        (
            ["train", "--tune", "--tune-minutes", "0", "--output", "{tmp}/out.json"],
            "--tune-minutes 0: give a number of minutes > 0",
        ),
        (["simulate", "--duration", "1"], "cannot use the Kafka broker at kafka://127.0.0.1:"),
    ],
    ids=["backtest-data", "backtest-model", "train-data", "train-tune-minutes", "simulate-broker"],
)
def test_commands_print_user_errors_as_one_line(
    worker_env: dict[str, str], trained_model: Path, tmp_path: Path, args: list[str], problem: str
) -> None:
    env = {**worker_env, "VIGIL_BROKER_URL": f"kafka://127.0.0.1:{free_port()}"}
    argv = [a.format(tmp=tmp_path, model=trained_model) for a in args]
    code, out = _run(argv, env)
    assert code == 1, out[-4000:]
    line = _the_one_line(out, f"vigil: {argv[0]}:")
    assert problem in line


#: A real worker with one extra agent or timer that raises: what a bug in one would do.
CRASHING_WORKER = """
import sys
what = sys.argv.pop(1)
sys.argv = ["faust", "-A", "app", "worker", "-l", "info"]
from app import app

if what == "agent":
    @app.agent(app.topic(app.settings.topic_transactions + ".crash", partitions=4))
    async def crasher(stream):
        raise RuntimeError("injected agent fault")
        async for _ in stream:
            pass
else:
    @app.timer(interval=0.5)
    async def crasher():
        raise RuntimeError("injected timer fault")

app.main()
"""


@pytest.mark.parametrize(("what", "code"), [("agent", 70), ("timer", 1)])
def test_a_crashed_agent_or_timer_stops_the_worker(
    worker_env: dict[str, str], tmp_path: Path, what: str, code: int
) -> None:
    script = tmp_path / "crashing_worker.py"
    script.write_text(CRASHING_WORKER)
    done = subprocess.run(
        [sys.executable, str(script), what],
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=GUARD_S,
        check=False,
    )
    out = done.stdout.decode(errors="replace")
    assert f"injected {what} fault" in out, out[-4000:]  # the fault really happened
    assert done.returncode == code, out[-4000:]
    if what == "agent":
        # A bug, so Faust's traceback of the crash is welcome; the exit is one line.
        (line,) = [ln for ln in out.splitlines() if "[CRITICAL]" in ln]
        assert "agent crashing_worker.crasher crashed (RuntimeError: injected agent fault)" in line


# -- a live worker and broken files -------------------------------------------------------------


def _tx(tx_id: str, account: str, amount: float, **kw: Any) -> tuple[bytes, bytes]:
    tx = {"tx_id": tx_id, "ts": int(time.time() * 1000), "account_id": account, "amount": amount}
    return account.encode(), orjson.dumps({**tx, **kw})


def _replace(path: Path, data: bytes) -> None:
    """Replace a file atomically, as operators are told to: one new version, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _metric(web_url: str, name: str, labels: str) -> float | None:
    with urllib.request.urlopen(f"{web_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_live_worker_keeps_scoring_when_its_rules_and_model_files_break(
    broker: Any,
    worker_env: dict[str, str],
    start_worker: Any,
    trained_model: Path,
    tmp_path: Path,
) -> None:
    rules, model = tmp_path / "rules.toml", tmp_path / "model.json"
    rules.write_text(DEFAULT_RULES.read_text())
    model.write_bytes(trained_model.read_bytes())
    env = {
        **worker_env,
        "VIGIL_RULES_PATH": str(rules),
        "VIGIL_MODEL_PATH": str(model),
        "VIGIL_LISTS_RELOAD_S": "0.5",
        "VIGIL_MODEL_RELOAD_S": "0.5",
    }
    worker = start_worker(env)
    topic, scored_topic = env["VIGIL_TOPIC_TRANSACTIONS"], env["VIGIL_TOPIC_SCORED"]
    failures = "vigil_reload_failures_total"
    assert _metric(worker.web_url, failures, 'kind="rules"') == 0.0

    first = [_tx(f"a-{i}", f"acc-{i}", 20_000.0, type="TRANSFER") for i in range(5)]
    produce(broker.bootstrap, topic, first)
    consume(broker.bootstrap, scored_topic, lambda recs: len(recs) >= len(first))

    # Break both files the way the issue found them: a Latin-1 byte, "feature_names": 5.
    bad_rules = DEFAULT_RULES.read_bytes().replace(b"[[rule]]", b"# r\xe9gle\n[[rule]]", 1)
    bad_model = {"format": 1, "version": "x", "thresholds": {}, "booster": {}, "feature_names": 5}
    _replace(rules, bad_rules)
    _replace(model, orjson.dumps(bad_model))
    wait_for_log(worker, "AML rules file not reloaded, keeping the previous version")
    wait_for_log(worker, "new model not loaded, still serving")

    later = [_tx(f"b-{i}", f"acc-{i}", 30_000.0, type="TRANSFER") for i in range(5)]
    produce(broker.bootstrap, topic, later)
    recs = consume(broker.bootstrap, scored_topic, lambda r: len(r) >= len(first) + len(later))
    scored = {d["tx_id"]: d for d in (orjson.loads(r.value) for r in recs)}
    assert {f"b-{i}" for i in range(5)} <= set(scored)
    for i in range(5):
        # The running rules still apply (an empty or broken file turns nothing off) and the
        # running model still scores.
        assert "round_amount" in [h["rule_id"] for h in scored[f"b-{i}"]["rules"]]
        assert scored[f"b-{i}"]["model_version"] == scored[f"a-{i}"]["model_version"]

    assert _metric(worker.web_url, failures, 'kind="rules"') == 1.0
    assert _metric(worker.web_url, failures, 'kind="model"') == 1.0
    log = worker.log()
    assert log.count("AML rules file not reloaded") == 1  # once per bad version, not per poll
    assert log.count("new model not loaded") == 1
    assert "Traceback" not in log
    assert worker.proc is not None and worker.proc.poll() is None
