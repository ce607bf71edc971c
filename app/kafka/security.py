"""TLS and SASL for every Kafka client Vigil creates, from the ``VIGIL_SECURITY_*`` settings.

One :class:`KafkaSecurity` is built from the settings at the edge (the app, a command) and
hands out the same security to each kind of client: Faust's broker credentials for the
worker's own consumer, producer and admin calls, and keyword arguments for the plain
aiokafka clients (the web view's alert feed, the simulator, the start-up broker check).
The password is held in a :class:`app.settings.Secret` and only revealed to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from app.settings import NO_SECRET, Secret, Settings

log = logging.getLogger("vigil.kafka_security")

#: The settings this module reads; a child process on a local plain-text broker (the demo's)
#: gets them removed from its environment.
SECURITY_VARIABLES = tuple(
    "VIGIL_" + f.name.upper()
    for f in fields(Settings)
    if f.name.startswith(("security_", "ssl_", "sasl_"))
)


class KafkaSecurityError(ValueError):
    """A certificate, key or password file cannot be used (a user error: one line)."""


@dataclass(frozen=True)
class KafkaSecurity:
    """The security of Vigil's Kafka clients: protocol, TLS context and SASL login."""

    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    mechanism: str | None = None
    username: str | None = None
    password: Secret = NO_SECRET

    @property
    def uses_tls(self) -> bool:
        """Tell whether connections are TLS (SSL or SASL_SSL)."""
        return self.ssl_context is not None

    @property
    def uses_sasl(self) -> bool:
        """Tell whether clients log in with SASL."""
        return self.mechanism is not None

    def client_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of an aiokafka client (consumer, producer, admin)."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        if self.mechanism is not None:
            kwargs["sasl_mechanism"] = self.mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password.reveal()
        return kwargs

    def faust_credentials(self) -> Any:
        """Return Faust's ``broker_credentials`` (None for plain text)."""
        import faust

        if self.mechanism is not None:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password.reveal(),
                ssl_context=self.ssl_context,
                mechanism=self.mechanism,
            )
        if self.ssl_context is not None:
            return faust.SSLCredentials(self.ssl_context)
        return None

    def describe(self) -> str:
        """Return a short description for logs and errors (never the password)."""
        if self.mechanism is not None:
            return f"{self.protocol}, {self.mechanism} as {self.username!r}"
        return self.protocol


PLAINTEXT = KafkaSecurity()


def _read(path: Any, what: str, variable: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise KafkaSecurityError(f"{variable}={path}: cannot read the {what} ({exc})") from None


def build_ssl_context(settings: Settings) -> ssl.SSLContext:
    """Return a TLS client context: the CA file (or the system's CAs), the client certificate.

    Hostname checking stays on unless ``VIGIL_SSL_CHECK_HOSTNAME=false``, which is logged as
    a WARNING every time a context is built.
    """
    ca = settings.ssl_ca_file
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaSecurityError(
            f"VIGIL_SSL_CA_FILE={ca}: not a PEM CA certificate ({_reason(exc)})"
        ) from None
    if settings.ssl_cert_file is not None:
        key = settings.ssl_key_file
        try:
            context.load_cert_chain(
                str(settings.ssl_cert_file), str(key) if key is not None else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSecurityError(
                f"VIGIL_SSL_CERT_FILE={settings.ssl_cert_file} / VIGIL_SSL_KEY_FILE={key}: "
                f"not a PEM certificate and its unencrypted key ({_reason(exc)})"
            ) from None
    if not settings.ssl_check_hostname:
        context.check_hostname = False
        log.warning(
            "TLS hostname checking is OFF (VIGIL_SSL_CHECK_HOSTNAME=false): any certificate "
            "the CA signed is accepted for any broker; turn it back on in production"
        )
    return context


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


def read_password(settings: Settings) -> Secret:
    """Return the SASL password: ``VIGIL_SASL_PASSWORD`` or the file's content (one line)."""
    if settings.sasl_password_file is None:
        return settings.sasl_password
    text = _read(settings.sasl_password_file, "password", "VIGIL_SASL_PASSWORD_FILE")
    password = text.rstrip("\r\n")
    if not password:
        raise KafkaSecurityError(f"VIGIL_SASL_PASSWORD_FILE={settings.sasl_password_file} is empty")
    return Secret(password)


def security_from_settings(settings: Settings) -> KafkaSecurity:
    """Build the clients' security from validated settings (reads the CA, key, password)."""
    protocol = settings.security_protocol
    context = build_ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if not protocol.startswith("SASL_"):
        return KafkaSecurity(protocol=protocol, ssl_context=context)
    return KafkaSecurity(
        protocol=protocol,
        ssl_context=context,
        mechanism=settings.sasl_mechanism,
        username=settings.sasl_username,
        password=read_password(settings),
    )


def without_security(env: Mapping[str, str]) -> dict[str, str]:
    """Return ``env`` for a child on a local plain-text broker: no TLS or SASL settings."""
    return {k: v for k, v in env.items() if k not in SECURITY_VARIABLES}


@dataclass(frozen=True)
class ConnectProblem:
    """Why a connection to a broker failed; ``final``: retrying cannot help, stop now."""

    message: str
    final: bool


def explain_connect_error(
    exc: BaseException, security: KafkaSecurity, address: str, speaks_tls: bool = False
) -> ConnectProblem:
    """Name the problem behind a failed connection to the broker at ``address``.

    Wrong credentials, an untrusted certificate or a protocol mismatch do not go away by
    retrying, so they are ``final``; anything else (refused, reset, timeout) may be a broker
    that is still starting. ``speaks_tls``: a plain-text client's connection was closed and
    the port then completed a TLS handshake (:func:`port_speaks_tls`).
    """
    from aiokafka import errors

    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or _reason(exc)
        if "mismatch" in why.lower():
            return ConnectProblem(
                f"the TLS certificate of the broker at {address} is not valid for that "
                f"address ({why}): use a host name it names in VIGIL_BROKER_URL "
                "(VIGIL_SSL_CHECK_HOSTNAME=false turns the check off)",
                final=True,
            )
        return ConnectProblem(
            f"the TLS certificate of the broker at {address} is not trusted ({why}): set "
            "VIGIL_SSL_CA_FILE to the CA certificate that signed it",
            final=True,
        )
    if isinstance(exc, ssl.SSLError):
        return ConnectProblem(
            f"TLS handshake with the broker at {address} failed ({_reason(exc)}): is it a TLS "
            f"listener? VIGIL_SECURITY_PROTOCOL={security.protocol} must match the listener",
            final=True,
        )
    if isinstance(exc, errors.SaslAuthenticationFailed | errors.IllegalSaslStateError):
        return ConnectProblem(
            f"the broker at {address} refused the SASL login ({security.describe()}): check "
            "VIGIL_SASL_USERNAME, VIGIL_SASL_PASSWORD (or _FILE) and VIGIL_SASL_MECHANISM",
            final=True,
        )
    if isinstance(exc, errors.UnsupportedSaslMechanismError):
        return ConnectProblem(
            f"the broker at {address} does not offer VIGIL_SASL_MECHANISM={security.mechanism} "
            f"({exc}): use one it enables",
            final=True,
        )
    if speaks_tls and not security.uses_tls:
        wanted = "SASL_SSL" if security.uses_sasl else "SSL (or SASL_SSL)"
        return ConnectProblem(
            f"the broker at {address} is a TLS listener but VIGIL_SECURITY_PROTOCOL="
            f"{security.protocol}: set VIGIL_SECURITY_PROTOCOL={wanted} and VIGIL_SSL_CA_FILE",
            final=True,
        )
    text = str(exc) or type(exc).__name__
    dropped = isinstance(exc, ConnectionResetError | ConnectionAbortedError) or (
        isinstance(exc, errors.KafkaConnectionError) and "closed" in text
    )
    if dropped:  # it listens, but hung up on us: often a listener of another protocol
        text += f"; is its listener one for VIGIL_SECURITY_PROTOCOL={security.protocol}?"
    return ConnectProblem(text, final=False)


async def port_speaks_tls(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Tell whether ``host:port`` completes a TLS handshake (no certificate check: a probe)."""
    probe = ssl.create_default_context()
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=probe), timeout_s
        )
    except (OSError, TimeoutError):  # ssl.SSLError is an OSError
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def _ask_metadata(host: str, port: int, security: KafkaSecurity, timeout_s: float) -> None:
    """Connect to one broker as every client does (TLS, SASL) and ask for cluster metadata."""
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    conn = await asyncio.wait_for(
        create_conn(
            host,
            port,
            request_timeout_ms=max(100, int(min(timeout_s, 40.0) * 1000)),
            **security.client_kwargs(),
        ),
        timeout=timeout_s,
    )
    try:
        await asyncio.wait_for(conn.send(MetadataRequest([])), timeout=timeout_s)
    finally:
        conn.close()


async def diagnose_connection(
    bootstrap: str, security: KafkaSecurity, timeout_s: float
) -> ConnectProblem | None:
    """Ask each bootstrap broker in turn for metadata; None once one answers.

    Otherwise return the problem: a ``final`` one as soon as it is seen, else the last.
    """
    from aiokafka.conn import collect_hosts
    from aiokafka.errors import KafkaConnectionError

    deadline = asyncio.get_running_loop().time() + timeout_s
    problem = ConnectProblem("no answer", final=False)
    for host, port, _ in collect_hosts(bootstrap):
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            break
        try:
            await _ask_metadata(host, port, security, remaining)
            return None
        except Exception as exc:  # refused, reset, DNS, timeout, TLS, SASL, not Kafka
            tls = False
            if not security.uses_tls and isinstance(exc, KafkaConnectionError):
                tls = await port_speaks_tls(host, port)
            problem = explain_connect_error(exc, security, f"{host}:{port}", tls)
            if problem.final:
                return problem
    return problem
