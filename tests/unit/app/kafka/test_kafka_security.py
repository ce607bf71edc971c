"""Kafka client security: settings validation, the settings -> client mapping, error lines.

Pure code, no broker: the certificates come from :mod:`tests.tls_support`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import faust
import pytest
from aiokafka import errors

from app.kafka.security import (
    PLAINTEXT,
    SECURITY_VARIABLES,
    KafkaSecurity,
    KafkaSecurityError,
    explain_connect_error,
    security_from_settings,
    without_security,
)
from app.settings import Secret, Settings, SettingsError, describe_settings, load_settings
from tests.tls_support import Pki, make_pki

PASSWORD = "pa55-w0rd-never-shown"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _sasl_ssl(pki: Pki, **extra: str) -> dict[str, str]:
    return {
        "VIGIL_SECURITY_PROTOCOL": "SASL_SSL",
        "VIGIL_SSL_CA_FILE": str(pki.ca),
        "VIGIL_SASL_MECHANISM": "SCRAM-SHA-256",
        "VIGIL_SASL_USERNAME": "vigil",
        "VIGIL_SASL_PASSWORD": PASSWORD,
        **extra,
    }


def test_plaintext_is_the_default_and_gives_no_credentials() -> None:
    security = security_from_settings(load_settings({}))
    assert security == PLAINTEXT
    assert security.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


def test_sasl_ssl_maps_to_faust_credentials_and_aiokafka_kwargs(pki: Pki) -> None:
    security = security_from_settings(load_settings(_sasl_ssl(pki)))
    kwargs = security.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert kwargs["sasl_plain_username"] == "vigil"
    assert kwargs["sasl_plain_password"] == PASSWORD
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "Vigil test CA"),),)]
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.password == PASSWORD
    assert credentials.ssl_context is context
    assert PASSWORD not in repr(credentials)


def test_faust_turns_the_credentials_into_the_same_client_kwargs(pki: Pki) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    for env in (
        _sasl_ssl(pki),
        _sasl_ssl(pki, VIGIL_SECURITY_PROTOCOL="SASL_PLAINTEXT", VIGIL_SSL_CA_FILE=""),
        {"VIGIL_SECURITY_PROTOCOL": "SSL", "VIGIL_SSL_CA_FILE": str(pki.ca)},
    ):
        security = security_from_settings(load_settings(env))
        faust_kwargs = credentials_to_aiokafka_auth(security.faust_credentials())
        ours = security.client_kwargs()
        assert {k: v for k, v in faust_kwargs.items() if v is not None} == ours, env


def test_ssl_alone_with_a_client_certificate(pki: Pki) -> None:
    env = {
        "VIGIL_SECURITY_PROTOCOL": "SSL",
        "VIGIL_SSL_CA_FILE": str(pki.ca),
        "VIGIL_SSL_CERT_FILE": str(pki.client_cert),
        "VIGIL_SSL_KEY_FILE": str(pki.client_key),
    }
    security = security_from_settings(load_settings(env))
    assert security.uses_tls and not security.uses_sasl
    assert set(security.client_kwargs()) == {"security_protocol", "ssl_context"}
    assert isinstance(security.faust_credentials(), faust.SSLCredentials)


def test_an_unset_ca_file_trusts_the_system_cas(pki: Pki) -> None:
    security = security_from_settings(load_settings({"VIGIL_SECURITY_PROTOCOL": "SSL"}))
    assert security.ssl_context is not None
    assert security.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_hostname_checking_off_is_logged_loudly(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    env = _sasl_ssl(pki, VIGIL_SSL_CHECK_HOSTNAME="false")
    with caplog.at_level(logging.WARNING, logger="vigil.kafka_security"):
        security = security_from_settings(load_settings(env))
    assert security.ssl_context is not None
    assert security.ssl_context.check_hostname is False
    assert security.ssl_context.verify_mode == ssl.CERT_REQUIRED  # the CA is still checked
    assert any("hostname checking is OFF" in r.getMessage() for r in caplog.records)


def test_the_password_file_is_read_without_its_line_end(pki: Pki, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    env = _sasl_ssl(pki, VIGIL_SASL_PASSWORD="", VIGIL_SASL_PASSWORD_FILE=str(secret))
    security = security_from_settings(load_settings(env))
    assert security.client_kwargs()["sasl_plain_password"] == PASSWORD


def test_the_password_is_never_shown(pki: Pki) -> None:
    settings = load_settings(_sasl_ssl(pki, VIGIL_WEB_TOKEN="web-token-never-shown"))
    security = security_from_settings(settings)
    shown = " ".join(
        [
            repr(settings),
            str(settings),
            repr(security),
            security.describe(),
            str(settings.sasl_password),
        ]
    )
    assert PASSWORD not in shown
    assert "web-token-never-shown" not in shown
    assert settings.sasl_password.reveal() == PASSWORD
    assert "vigil" in security.describe()  # the user name is not a secret


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VIGIL_SECURITY_PROTOCOL": "TLS"}, "VIGIL_SECURITY_PROTOCOL must be one of PLAINTEXT"),
        ({"VIGIL_SASL_MECHANISM": "GSSAPI"}, "VIGIL_SASL_MECHANISM must be one of PLAIN"),
        (
            {"VIGIL_SSL_CA_FILE": "{tmp}/missing.pem"},
            "VIGIL_SSL_CA_FILE={tmp}/missing.pem: no such",
        ),
        ({"VIGIL_SASL_PASSWORD": ""}, "needs exactly one of VIGIL_SASL_PASSWORD and"),
        ({"VIGIL_SASL_PASSWORD_FILE": "{ca}"}, "needs exactly one of VIGIL_SASL_PASSWORD and"),
        ({"VIGIL_SASL_USERNAME": " "}, "SASL_SSL needs VIGIL_SASL_USERNAME"),
        ({"VIGIL_SSL_KEY_FILE": "{ca}"}, "VIGIL_SSL_KEY_FILE needs VIGIL_SSL_CERT_FILE"),
        ({"VIGIL_SSL_CHECK_HOSTNAME": "maybe"}, "VIGIL_SSL_CHECK_HOSTNAME='maybe': expected bool"),
        ({"VIGIL_BROKER_FLAVOR": "tansu"}, "the embedded tansu broker"),
        ({"VIGIL_SECURITY_PROTOCOL": "PLAINTEXT"}, "credentials are set but"),
        (
            {"VIGIL_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            "VIGIL_SSL_* files are set but VIGIL_SECURITY_PROTOCOL=SASL_PLAINTEXT uses no TLS",
        ),
    ],
    ids=[
        "protocol",
        "mechanism",
        "missing-ca",
        "no-password",
        "two-passwords",
        "no-user",
        "key-without-cert",
        "hostname-bool",
        "tansu",
        "sasl-on-plaintext",
        "ssl-on-sasl-plaintext",
    ],
)
def test_invalid_security_settings_name_the_variable(
    pki: Pki, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    fill = {"tmp": str(tmp_path), "ca": str(pki.ca)}
    overrides = {k: v.format(**fill) for k, v in env.items()}
    with pytest.raises(SettingsError) as caught:
        load_settings(_sasl_ssl(pki, **overrides))
    text = str(caught.value)
    assert message.format(**fill) in text
    assert "\n" not in text
    assert PASSWORD not in text


def test_a_file_that_is_not_pem_is_one_line(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(KafkaSecurityError, match=r"VIGIL_SSL_CA_FILE=.*junk.pem: not a PEM CA"):
        security_from_settings(load_settings(_sasl_ssl(pki, VIGIL_SSL_CA_FILE=str(junk))))
    env = _sasl_ssl(pki, VIGIL_SSL_CERT_FILE=str(pki.client_cert), VIGIL_SSL_KEY_FILE=str(junk))
    with pytest.raises(KafkaSecurityError, match="not a PEM certificate and its unencrypted key"):
        security_from_settings(load_settings(env))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    env = _sasl_ssl(pki, VIGIL_SASL_PASSWORD="", VIGIL_SASL_PASSWORD_FILE=str(empty))
    with pytest.raises(KafkaSecurityError, match=r"VIGIL_SASL_PASSWORD_FILE=.* is empty"):
        security_from_settings(load_settings(env))


def test_every_security_setting_is_described_and_removed_for_a_local_broker() -> None:
    described = dict(describe_settings())
    assert set(SECURITY_VARIABLES) <= set(described)
    assert described["VIGIL_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert described["VIGIL_SSL_CHECK_HOSTNAME"] == "True"
    assert described["VIGIL_SASL_PASSWORD"] == ""
    env = {"VIGIL_SASL_PASSWORD": PASSWORD, "VIGIL_SSL_CA_FILE": "x", "VIGIL_WEB_PORT": "1"}
    assert without_security(env) == {"VIGIL_WEB_PORT": "1"}


def test_a_secret_hides_its_value() -> None:
    secret = Secret(PASSWORD)
    assert PASSWORD not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == PASSWORD
    assert Secret() == Settings().sasl_password and not Secret()


SCRAM = KafkaSecurity(
    "SASL_SSL", ssl.create_default_context(), "SCRAM-SHA-256", "vigil", Secret(PASSWORD)
)


def _cert_error(message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_message = message
    return exc


@pytest.mark.parametrize(
    ("exc", "security", "speaks_tls", "final", "words"),
    [
        (_cert_error("unable to get local issuer certificate"), SCRAM, False, True, "not trusted"),
        (
            _cert_error("Hostname mismatch, certificate is not valid for 'h'."),
            SCRAM,
            False,
            True,
            "not valid for that address",
        ),
        (ssl.SSLError(1, "[SSL] record layer failure"), SCRAM, False, True, "is it a TLS listener"),
        (
            errors.SaslAuthenticationFailed("invalid credentials"),
            SCRAM,
            False,
            True,
            "refused the SASL login (SASL_SSL, SCRAM-SHA-256 as 'vigil')",
        ),
        (
            errors.UnsupportedSaslMechanismError("enabled: ['PLAIN']"),
            SCRAM,
            False,
            True,
            "does not offer VIGIL_SASL_MECHANISM=SCRAM-SHA-256",
        ),
        (
            errors.KafkaConnectionError("Connection at h:1 closed"),
            PLAINTEXT,
            True,
            True,
            "is a TLS listener but VIGIL_SECURITY_PROTOCOL=PLAINTEXT",
        ),
        (
            errors.KafkaConnectionError("Connection at h:1 closed"),
            PLAINTEXT,
            False,
            False,
            "is its listener one for VIGIL_SECURITY_PROTOCOL=PLAINTEXT",
        ),
        (ConnectionResetError(), SCRAM, False, False, "ConnectionResetError; is its listener"),
        (ConnectionRefusedError(111, "Connect call failed"), SCRAM, False, False, "Connect call"),
        (TimeoutError(), PLAINTEXT, False, False, "TimeoutError"),
    ],
    ids=[
        "unknown-ca",
        "hostname",
        "tls-to-plain",
        "password",
        "mechanism",
        "plain-to-tls",
        "closed",
        "reset",
        "refused",
        "timeout",
    ],
)
def test_connect_errors_are_named_and_final_only_when_retrying_cannot_help(
    exc: BaseException, security: KafkaSecurity, speaks_tls: bool, final: bool, words: str
) -> None:
    problem = explain_connect_error(exc, security, "h:1", speaks_tls)
    assert problem.final is final
    assert words in problem.message
    assert "\n" not in problem.message
    assert PASSWORD not in problem.message


class StoppedError(Exception):
    """Raised instead of ``os._exit`` so the test sees the line and the code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


@pytest.fixture
def stops(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.kafka.failfast as failfast

    def stop(message: str, code: int) -> None:
        raise StoppedError(message, code)

    monkeypatch.setattr(failfast, "stop_process", stop)


async def _tls_server(pki: Pki) -> tuple[asyncio.Server, int, list[int]]:
    """Serve TLS with the broker certificate; count the connections (the fault's proof)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.broker_cert), str(pki.broker_key))
    connections: list[int] = []

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1], connections


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "is a TLS listener but VIGIL_SECURITY_PROTOCOL=PLAINTEXT"),
        ({"VIGIL_SECURITY_PROTOCOL": "SSL", "VIGIL_SSL_CA_FILE": "stranger"}, "is not trusted"),
    ],
    ids=["plaintext-to-tls", "unknown-ca"],
)
async def test_the_broker_check_stops_at_once_on_a_final_problem(
    pki: Pki, stops: None, env: dict[str, str], words: str
) -> None:
    from app.kafka.failfast import reach_broker

    if env.get("VIGIL_SSL_CA_FILE") == "stranger":
        env = {**env, "VIGIL_SSL_CA_FILE": str(pki.stranger_ca)}
    security = security_from_settings(load_settings(env))
    server, port, _ = await _tls_server(pki)
    try:
        with pytest.raises(StoppedError) as info:
            # A timeout far beyond the test: only a final problem ends the check early.
            await reach_broker(f"kafka://127.0.0.1:{port}", f"127.0.0.1:{port}", 600.0, security)
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.code == 78
    assert info.value.message.startswith("cannot use the Kafka broker: ")
    assert f"127.0.0.1:{port}" in info.value.message and words in info.value.message
    assert "\n" not in info.value.message


async def test_a_tls_port_is_recognised_and_a_plain_one_is_not(pki: Pki) -> None:
    from app.kafka.security import port_speaks_tls

    server, port, connections = await _tls_server(pki)
    plain = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    plain_port = plain.sockets[0].getsockname()[1]
    try:
        assert await port_speaks_tls("127.0.0.1", port)
        assert not await port_speaks_tls("127.0.0.1", plain_port)
    finally:
        for each in (server, plain):
            each.close()
            await each.wait_closed()
    assert connections  # the TLS server really completed a handshake
