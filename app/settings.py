"""Vigil settings: every ``VIGIL_*`` environment variable, read once, in one place.

Nothing else in the code base reads the environment. Code below the edge receives a
:class:`Settings` (or plain values taken from it) as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from models.tiers import ALERTED_TIERS
from models.transaction import DEFAULT_MAX_AMOUNT

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_PATH = REPO_ROOT / "models" / "artifacts" / "vigil-default.json"
DEFAULT_RULES_PATH = REPO_ROOT / "models" / "aml" / "default_rules.toml"

#: Smallest VIGIL_MAX_MESSAGE_BYTES: a dead letter must fit its headers and some payload.
MIN_MESSAGE_BYTES = 4096
#: Largest VIGIL_MAX_AMOUNT: beyond it float64 sums lose cents and float32 features grow
#: towards their limit (3.4e38) over a busy month.
MAX_AMOUNT_LIMIT = 1e15


#: How Kafka clients reach the brokers (Kafka's ``security.protocol``).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class SettingsError(ValueError):
    """A ``VIGIL_*`` variable has a value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A value that is never shown: its repr and str hide it (settings, logs, errors)."""

    value: str = field(default="", repr=False)

    def reveal(self) -> str:
        """Return the secret itself, for the one call that needs it (a client's login)."""
        return self.value

    def __bool__(self) -> bool:
        return bool(self.value)

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"

    def __str__(self) -> str:
        return "***" if self.value else ""


NO_SECRET = Secret()


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed, immutable view of the ``VIGIL_*`` environment."""

    broker_url: str = "kafka://127.0.0.1:9092"
    #: ``kafka`` for Apache Kafka; ``tansu`` turns on the embedded-broker workarounds.
    broker_flavor: str = "kafka"
    #: How long a starting worker tries to reach the broker before it exits (69).
    broker_connect_timeout_s: float = 30.0
    data_dir: Path = Path(".vigil-data")
    #: Where ``broker --kafka``, ``demo --broker kafka`` and the tests cache the Apache Kafka
    #: jars; unset = ``$XDG_CACHE_HOME/vigil/kafka-<version>`` (``~/.cache`` by default).
    kafka_jars_dir: Path | None = None
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: Host other workers use to reach this one (table_route forwarding); empty = web_host.
    #: Needed when web_host is 0.0.0.0, e.g. the container's service name.
    web_advertised_host: str = ""
    model_path: Path = DEFAULT_MODEL_PATH
    #: Optional challenger artifact scored beside the champion (never alerts).
    challenger_model_path: Path | None = None
    #: How often the worker checks the artifact files for a new model (hot swap).
    model_reload_s: float = 5.0
    partitions: int = 4
    replication_factor: int = 1
    #: ``min.insync.replicas`` of every topic Vigil creates; unset = 2 from replication
    #: factor 3 on (one broker may fail without stopping writes), else 1.
    min_insync_replicas: int | None = None
    #: ``all`` (the leader waits for every in-sync replica) or ``1`` (the leader alone).
    producer_acks: str = "all"
    app_id: str = "vigil"

    topic_transactions: str = "transactions"
    topic_deadletter: str = "transactions.deadletter"
    topic_repartition: str = "transactions.by-account"
    topic_scored: str = "transactions.scored"
    topic_alerts_high: str = "alerts.high"
    topic_alerts_medium: str = "alerts.medium"
    topic_alerts_low: str = "alerts.low"
    topic_labels: str = "labels"
    topic_by_counterparty: str = "transactions.by-counterparty"

    #: AML rules (TOML) and the allow / deny / suppression lists, re-read when they change.
    rules_path: Path = DEFAULT_RULES_PATH
    allowlist_path: Path | None = None
    denylist_path: Path | None = None
    suppressions_path: Path | None = None
    lists_reload_s: float = 5.0

    #: Token required by the web view's mutating endpoints (labelling); empty disables them.
    web_token: str = field(default="", repr=False)
    web_max_body_bytes: int = 16384
    #: Alerts kept in memory for the web view (from all partitions).
    web_recent_alerts: int = 1000

    #: Recent scores compared with the artifact's validation distribution (drift PSI).
    drift_window: int = 5000

    tier_high: float | None = None
    tier_medium: float | None = None
    tier_low: float | None = None

    #: Most records per micro-batch; a batch is what one fetch returned, cut to this size.
    batch_size: int = 500
    #: Extra wait for a batch short of ``batch_size`` to grow. 0: a fetch at a time, which
    #: already grows with the load (the next fetch holds what arrived meanwhile).
    batch_linger_ms: float = 0.0
    #: How long transfers forwarded to the fan-in stage are collected before they are sent.
    #: Fewer, larger batches on transactions.by-counterparty; fan-in alerts come this much
    #: later. 0 sends them with each micro-batch.
    fanin_linger_ms: float = 200.0
    max_message_bytes: int = 65536
    #: Largest amount (and absolute balance) a transaction may carry; larger ones are
    #: dead-lettered. Bounded so that no sum or feature can overflow the model's float32.
    max_amount: float = DEFAULT_MAX_AMOUNT
    reasons_top_k: int = 3

    fetch_max_wait_ms: int = 10
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    commit_interval_s: float = 1.0
    #: Faust's stall detector: a partition with records waiting and no event taken by its
    #: stream for this long is logged as an ERROR (Faust's ``stream_processing_timeout``).
    stream_processing_timeout_s: float = 300.0

    log_level: str = "info"

    #: Kafka client security (every client: worker, web feed, simulator, admin), see
    #: :mod:`app.kafka.security`. Unset CA file: the system's trusted CAs.
    security_protocol: str = "PLAINTEXT"
    ssl_ca_file: Path | None = None
    #: Client certificate (PEM; may hold the key too) and its key, for brokers that ask.
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    #: Check that the broker's certificate names the host in VIGIL_BROKER_URL.
    ssl_check_hostname: bool = True
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    #: Exactly one of the two with a SASL protocol; the file's content minus its line end.
    sasl_password: Secret = NO_SECRET
    sasl_password_file: Path | None = None

    def tier_overrides(self) -> dict[str, float]:
        """Return the tier thresholds set in the environment, by tier name."""
        pairs = (("HIGH", self.tier_high), ("MEDIUM", self.tier_medium), ("LOW", self.tier_low))
        return {tier: value for tier, value in pairs if value is not None}

    def alert_topics(self) -> dict[str, str]:
        """Return the alert topic of each alerted tier."""
        return {
            "HIGH": self.topic_alerts_high,
            "MEDIUM": self.topic_alerts_medium,
            "LOW": self.topic_alerts_low,
        }

    @property
    def web_url(self) -> str:
        """Return the URL other workers reach this worker's web server at."""
        return f"http://{self.web_advertised_host or self.web_host}:{self.web_port}"

    @property
    def topic_min_insync_replicas(self) -> int:
        """Return the ``min.insync.replicas`` the topics Vigil creates get."""
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return 2 if self.replication_factor >= 3 else 1

    @property
    def producer_acks_count(self) -> int:
        """Return Faust's ``producer_acks``: -1 for ``all``, else the number."""
        return -1 if self.producer_acks == "all" else int(self.producer_acks)

    @property
    def is_embedded_broker(self) -> bool:
        """Tell whether the workarounds for the embedded tansu broker apply."""
        return self.broker_flavor == "tansu"


def bootstrap_servers(broker_url: str) -> str:
    """Turn Faust's ``kafka://h1:p1;h2:p2`` into aiokafka's ``h1:p1,h2:p2``."""
    parts = broker_url.replace(";", ",").split(",")
    return ",".join(part.strip().split("://", 1)[-1] for part in parts if part.strip())


def _env_name(field_name: str) -> str:
    return "VIGIL_" + field_name.upper()


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _parse(name: str, raw: str, kind: str) -> object:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("not finite")
            return value
        if kind == "int | None":
            return None if raw.strip() == "" else int(raw)
        if kind == "float | None":
            return None if raw.strip() == "" else _parse(name, raw, "float")
        if kind == "Path":
            return Path(raw).expanduser()
        if kind == "Path | None":
            return None if raw.strip() == "" else Path(raw).expanduser()
        if kind == "bool":
            word = raw.strip().lower()
            if word not in _BOOLEANS:
                raise ValueError("true or false")
            return _BOOLEANS[word]
        if kind == "Secret":
            return Secret(raw)
    except ValueError as exc:
        shown = "***" if kind == "Secret" else repr(raw)
        raise SettingsError(f"{name}={shown}: expected {kind} ({exc})") from exc
    return raw


_BROKER_SCHEMES = ("kafka", "aiokafka")


def _broker_url_problems(url: str) -> list[str]:
    """Check ``kafka://host:port[;host:port...]``, Faust's broker URL."""
    example = "e.g. kafka://127.0.0.1:9092 or kafka://h1:9092;h2:9092"
    if not url.strip():
        return [f"VIGIL_BROKER_URL is empty: set it to the Kafka brokers ({example})"]
    for i, part in enumerate(url.replace(",", ";").split(";")):
        entry = part.strip()
        if not entry:
            return [f"VIGIL_BROKER_URL {url!r} has an empty entry ({example})"]
        scheme, sep, rest = entry.partition("://")
        if (sep or i == 0) and scheme not in _BROKER_SCHEMES:
            return [f"VIGIL_BROKER_URL {entry!r} must start with kafka:// ({example})"]
        host, colon, port = (rest if sep else entry).rpartition(":")
        if not colon:
            host, port = (rest if sep else entry), "9092"
        ok_host = bool(host) and not any(c in host for c in "/?#@ ")
        if not ok_host or not port.isdigit() or not 1 <= int(port) <= 65535:
            return [f"VIGIL_BROKER_URL {entry!r} is not host:port ({example})"]
    return []


def _topic_problems(settings: Settings) -> list[str]:
    """Each topic Vigil reads or writes has a name of its own (alert tiers may share one)."""
    own = {
        "VIGIL_TOPIC_TRANSACTIONS": settings.topic_transactions,
        "VIGIL_TOPIC_REPARTITION": settings.topic_repartition,
        "VIGIL_TOPIC_BY_COUNTERPARTY": settings.topic_by_counterparty,
        "VIGIL_TOPIC_LABELS": settings.topic_labels,
        "VIGIL_TOPIC_DEADLETTER": settings.topic_deadletter,
        "VIGIL_TOPIC_SCORED": settings.topic_scored,
    }
    alerts = {f"VIGIL_TOPIC_ALERTS_{t}": name for t, name in settings.alert_topics().items()}
    problems = [f"{var} is empty" for var, name in {**own, **alerts}.items() if not name.strip()]
    seen: dict[str, str] = {}
    for var, name in own.items():
        if name in seen:
            problems.append(f"{var} and {seen[name]} name the same topic {name!r}: use two topics")
        elif name in alerts.values():
            problems.append(f"{var} names an alert topic, {name!r}: give it its own topic")
        seen[name] = var
    return problems


def _security_problems(s: Settings) -> list[str]:
    """Check the Kafka client security settings (a user names each file that must exist)."""
    protocol = s.security_protocol
    if protocol not in SECURITY_PROTOCOLS:
        return [f"VIGIL_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}"]
    problems: list[str] = []
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = protocol.startswith("SASL_")
    files = {
        "VIGIL_SSL_CA_FILE": s.ssl_ca_file,
        "VIGIL_SSL_CERT_FILE": s.ssl_cert_file,
        "VIGIL_SSL_KEY_FILE": s.ssl_key_file,
        "VIGIL_SASL_PASSWORD_FILE": s.sasl_password_file,
    }
    for var, path in files.items():
        if path is not None and not path.is_file():
            problems.append(f"{var}={path}: no such file")
    if not tls and (s.ssl_ca_file or s.ssl_cert_file or s.ssl_key_file):
        problems.append(
            f"VIGIL_SSL_* files are set but VIGIL_SECURITY_PROTOCOL={protocol} uses no TLS: "
            "set SSL or SASL_SSL, or unset them"
        )
    if s.ssl_key_file is not None and s.ssl_cert_file is None:
        problems.append("VIGIL_SSL_KEY_FILE needs VIGIL_SSL_CERT_FILE (the client certificate)")
    if s.sasl_mechanism not in SASL_MECHANISMS:
        problems.append(f"VIGIL_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}")
    has_password = bool(s.sasl_password) or s.sasl_password_file is not None
    if sasl:
        if not s.sasl_username.strip():
            problems.append(f"VIGIL_SECURITY_PROTOCOL={protocol} needs VIGIL_SASL_USERNAME")
        if bool(s.sasl_password) == (s.sasl_password_file is not None):
            problems.append(
                f"VIGIL_SECURITY_PROTOCOL={protocol} needs exactly one of VIGIL_SASL_PASSWORD "
                "and VIGIL_SASL_PASSWORD_FILE"
            )
    elif s.sasl_username or has_password:
        problems.append(
            f"VIGIL_SASL_* credentials are set but VIGIL_SECURITY_PROTOCOL={protocol} uses no "
            "SASL: set SASL_SSL (or SASL_PLAINTEXT), or unset them"
        )
    if protocol != "PLAINTEXT" and s.broker_flavor == "tansu":
        problems.append(
            f"VIGIL_SECURITY_PROTOCOL={protocol} is for Apache Kafka: the embedded tansu broker "
            "(VIGIL_BROKER_FLAVOR=tansu) speaks plain text"
        )
    return problems


def _check(settings: Settings) -> None:
    problems: list[str] = []
    if settings.broker_flavor not in ("kafka", "tansu"):
        problems.append("VIGIL_BROKER_FLAVOR must be 'kafka' or 'tansu'")
    for name in (
        "partitions",
        "replication_factor",
        "batch_size",
        "max_message_bytes",
        "web_max_body_bytes",
        "web_recent_alerts",
        "drift_window",
    ):
        if getattr(settings, name) < 1:
            problems.append(f"{_env_name(name)} must be >= 1")
    min_isr = settings.min_insync_replicas
    if min_isr is not None and not 1 <= min_isr <= settings.replication_factor:
        problems.append(
            "VIGIL_MIN_INSYNC_REPLICAS must be within 1..VIGIL_REPLICATION_FACTOR "
            f"({settings.replication_factor}): more and no write with acks=all succeeds"
        )
    if settings.producer_acks not in ("all", "1"):
        problems.append(
            "VIGIL_PRODUCER_ACKS must be 'all' or '1' (with 0 an offset commit could cover "
            "records the broker never stored)"
        )
    if not 1 <= settings.web_port <= 65535:
        problems.append("VIGIL_WEB_PORT must be a TCP port")
    for name in (
        "model_reload_s",
        "lists_reload_s",
        "broker_connect_timeout_s",
        "session_timeout_s",
        "heartbeat_interval_s",
        "commit_interval_s",
        "stream_processing_timeout_s",
    ):
        if getattr(settings, name) <= 0:
            problems.append(f"{_env_name(name)} must be > 0")
    if settings.max_message_bytes < MIN_MESSAGE_BYTES:
        problems.append(
            f"VIGIL_MAX_MESSAGE_BYTES must be >= {MIN_MESSAGE_BYTES} (a dead letter's headers "
            "alone take up to ~2.5 KiB)"
        )
    if not 0 < settings.max_amount <= MAX_AMOUNT_LIMIT:
        problems.append(f"VIGIL_MAX_AMOUNT must be > 0 and at most {MAX_AMOUNT_LIMIT:g}")
    if 0 < settings.session_timeout_s <= settings.heartbeat_interval_s:
        problems.append(
            "VIGIL_HEARTBEAT_INTERVAL_S must be below VIGIL_SESSION_TIMEOUT_S "
            "(Kafka advises a third of it)"
        )
    if settings.reasons_top_k < 0:
        problems.append("VIGIL_REASONS_TOP_K must be >= 0")
    problems.extend(_broker_url_problems(settings.broker_url))
    problems.extend(_topic_problems(settings))
    problems.extend(_security_problems(settings))
    if settings.web_token and (
        not settings.web_token.strip() or settings.web_token != settings.web_token.strip()
    ):
        problems.append(
            "VIGIL_WEB_TOKEN is blank or has spaces around it: set a secret, or unset it to "
            "turn labelling off"
        )
    if settings.batch_linger_ms < 0:
        problems.append("VIGIL_BATCH_LINGER_MS must be >= 0")
    if settings.fanin_linger_ms < 0:
        problems.append("VIGIL_FANIN_LINGER_MS must be >= 0")
    if settings.fetch_max_wait_ms < 1:
        problems.append("VIGIL_FETCH_MAX_WAIT_MS must be >= 1 (0 returns empty fetches on tansu)")
    for tier, value in settings.tier_overrides().items():
        if not 0.0 <= value <= 1.0:
            problems.append(f"VIGIL_TIER_{tier} must be within 0..1")
    overrides = settings.tier_overrides()
    ordered = [overrides[t] for t in ALERTED_TIERS if t in overrides]
    if ordered != sorted(ordered, reverse=True):
        problems.append("tier thresholds must satisfy HIGH >= MEDIUM >= LOW")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        problems.append("VIGIL_LOG_LEVEL must be debug, info, warning or error")
    if problems:
        raise SettingsError("; ".join(problems))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``VIGIL_*`` variables (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    known = {_env_name(f.name) for f in fields(Settings)}
    unknown = sorted(k for k in env if k.startswith("VIGIL_") and k not in known)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = env.get(_env_name(f.name))
        if raw is not None:
            values[f.name] = _parse(_env_name(f.name), raw, str(f.type))
    settings = Settings(**values)  # type: ignore[arg-type]
    _check(settings)
    return settings


def describe_settings() -> list[tuple[str, str]]:
    """Return ``(variable, default)`` pairs, for the README table and ``--help`` texts."""
    defaults = Settings()
    out = []
    for f in fields(Settings):
        value = getattr(defaults, f.name)
        out.append((_env_name(f.name), "" if value is None else str(value)))
    return out
