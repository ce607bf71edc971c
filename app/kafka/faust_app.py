"""The Faust application: settings, topic declarations, nothing that imports agents."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import faust
from faust.cli import AppCommand
from faust.types import TopicT
from mode.utils.objects import cached_property

from app.kafka.batch_delivery import BatchRoute, BatchRoutes
from app.kafka.failfast import (
    EX_CONFIG,
    ExitOnCrash,
    VigilCommand,
    print_and_exit,
    reach_broker,
    run_start_checks,
)
from app.kafka.security import KafkaSecurity, KafkaSecurityError, security_from_settings
from app.kafka.tansu_compat import Workarounds
from app.settings import Settings, SettingsError, bootstrap_servers, load_settings
from monitoring.metrics import VigilMetrics


class VigilApp(faust.App):  # type: ignore[misc]
    """Faust app that carries the :class:`Settings`, the metrics and Vigil's transport."""

    def __init__(
        self, settings: Settings, security: KafkaSecurity | None = None, **kwargs: Any
    ) -> None:
        self.settings = settings
        #: TLS and SASL of every Kafka client: Faust's and Vigil's own (feed, simulator).
        self.kafka_security = security or security_from_settings(settings)
        self.metrics = VigilMetrics(drift_window=settings.drift_window)
        #: The embedded broker's workarounds: asked before each one, off on Apache Kafka.
        self.tansu = Workarounds(settings.is_embedded_broker)
        #: The served model (agents.pipeline.ServedModel), loaded when the agent starts.
        self.scoring_model: Any = None
        #: AML rules and lists (models.aml.runtime.AmlRuntime), loaded when an agent starts.
        self.aml_runtime: Any = None
        #: Loaders of what a worker serves (model, rules, lists), registered by the agent
        #: modules and run before the worker connects: a wrong file stops it at once.
        self.start_checks: list[Callable[[], object]] = []
        super().__init__(
            settings.app_id,
            broker=settings.broker_url,
            broker_credentials=self.kafka_security.faust_credentials(),
            store="rocksdb://",
            datadir=str(settings.data_dir),
            autodiscover=["agents", "tables", "monitoring", "app.web"],
            origin="app",
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            producer_acks=settings.producer_acks_count,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=settings.heartbeat_interval_s,
            broker_commit_interval=settings.commit_interval_s,
            stream_processing_timeout=settings.stream_processing_timeout_s,
            producer_max_request_size=max(1_048_576, settings.max_message_bytes * 4),
            web_host=settings.web_host,
            web_bind=settings.web_host,
            web_port=settings.web_port,
            canonical_url=settings.web_url,
            logging_config=None,
            agent_supervisor=ExitOnCrash,
            **kwargs,
        )
        # Faust's own Prometheus sensor, on the same registry and /metrics page.
        self.monitor = self.metrics.faust_monitor()
        #: Topics whose records reach their agent a fetch at a time (app.kafka.batch_delivery).
        self.batch_routes = BatchRoutes()

    def command(
        self, *options: Any, base: type[AppCommand] | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], type[AppCommand]]:
        """Declare a CLI command whose user errors print one line (``VigilCommand``)."""
        return super().command(*options, base=base or VigilCommand, **kwargs)

    async def on_first_start(self) -> None:
        """Refuse to start without usable files or a reachable broker (one line, non-zero)."""
        await super().on_first_start()
        if not (self.producer_only or self.client_only):  # `faust send` serves nothing
            run_start_checks(self.start_checks)
        s = self.settings
        await reach_broker(
            s.broker_url,
            bootstrap_servers(s.broker_url),
            s.broker_connect_timeout_s,
            self.kafka_security,
        )
        if not (self.producer_only or self.client_only):
            for topic in self.input_topics():
                await topic.maybe_declare()

    def _new_transport(self) -> Any:
        from app.kafka.transport import VigilTransport

        return VigilTransport(self.conf.broker_consumer, self)

    @cached_property
    def transactions_topic(self) -> TopicT:
        """Return the input topic (raw bytes; validation happens in the agent)."""
        return self.topic(self.settings.topic_transactions, partitions=self.settings.partitions)

    @cached_property
    def repartition_topic(self) -> TopicT:
        """Return the topic that re-keys transactions by account for mis-keyed producers."""
        return self.topic(
            self.settings.topic_repartition,
            partitions=self.settings.partitions,
            internal=True,
        )

    @cached_property
    def labels_topic(self) -> TopicT:
        """Return the topic of analyst and back-office verdicts (keyed by tx_id)."""
        return self.topic(self.settings.topic_labels, partitions=self.settings.partitions)

    @cached_property
    def labels_by_counterparty_topic(self) -> TopicT:
        """Return labels re-keyed by counterparty, so each risk key has a single writer."""
        return self.topic(
            f"{self.settings.topic_labels}.by-counterparty",
            partitions=self.settings.partitions,
            internal=True,
        )

    @cached_property
    def by_counterparty_topic(self) -> TopicT:
        """Return the topic that re-keys transactions by counterparty for the fan-in rules.

        Co-partitioned with the fan-in table: same partition count as every other topic.
        """
        return self.topic(
            self.settings.topic_by_counterparty,
            partitions=self.settings.partitions,
            internal=True,
        )

    @cached_property
    def transaction_batches(self) -> BatchRoute:
        """Return the route of both scoring inputs (as sent, and re-keyed) to their agent."""
        topics = [self.transactions_topic, self.repartition_topic]
        route = BatchRoute(self, "score-transactions", topics, self.settings.batch_size)
        return self.batch_routes.add(route)

    @cached_property
    def counterparty_batches(self) -> BatchRoute:
        """Return the route of transactions re-keyed by counterparty to the fan-in agent."""
        topics = [self.by_counterparty_topic]
        route = BatchRoute(self, "aml-fan-in", topics, self.settings.batch_size)
        return self.batch_routes.add(route)

    def input_topics(self) -> list[TopicT]:
        """Return the topics producers write to, created (if missing) before the group join.

        Apache Kafka does not auto-create them where ``auto.create.topics.enable`` is off
        (managed clusters, the test broker), and Faust creates internal topics only: the
        worker joined without its input and never scored. Existing topics are left alone
        (a wrong partition count still stops the worker, see agents.transactions).
        """
        return [self.transactions_topic, self.labels_topic]

    def output_topics(self) -> list[TopicT]:
        """Return the topics Vigil produces to, so they can be created up front."""
        s = self.settings
        names = [s.topic_scored, s.topic_deadletter, *s.alert_topics().values()]
        return [self.topic(name, partitions=s.partitions) for name in names]


def create_app(settings: Settings | None = None) -> VigilApp:
    """Build the app from the environment (or from explicit settings)."""
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            # At import time (`faust -A app ...`): one line, not a traceback out of the CLI.
            print_and_exit(f"invalid settings: {exc}", EX_CONFIG)
    logging.getLogger("vigil").setLevel(settings.log_level.upper())
    try:
        security = security_from_settings(settings)
    except KafkaSecurityError as exc:
        print_and_exit(f"invalid settings: {exc}", EX_CONFIG)
    return VigilApp(settings, security)
