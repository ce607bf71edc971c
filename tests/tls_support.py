"""Certificates for the TLS tests: a CA, a broker certificate it signs, a stranger CA.

Made with ``cryptography`` in a test's temporary folder, PEM throughout (what Kafka's
``ssl.keystore.type=PEM`` reads and what Python's ``ssl`` loads).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: Fixed validity window around the test run (certificates are checked against the clock).
_NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_NOT_AFTER = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Pki:
    """PEM files: ``ca`` signed the broker and client certificates, ``stranger_ca`` did not."""

    ca: Path
    broker_cert: Path
    broker_key: Path
    #: Certificate chain and key in one file (Kafka's PEM keystore).
    broker_keystore: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: tuple[str, ...],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Pki:
    """Write a CA, a broker certificate for ``hosts`` (SAN), a client one and a stranger CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("Vigil test CA")
    broker, broker_key = _leaf("vigil-test-broker", ca, ca_key, hosts)
    client, client_key = _leaf("vigil-test-client", ca, ca_key, ())
    stranger, _ = _ca("Some other CA")
    pki = Pki(
        ca=folder / "ca.pem",
        broker_cert=folder / "broker.pem",
        broker_key=folder / "broker.key",
        broker_keystore=folder / "broker-keystore.pem",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        stranger_ca=folder / "stranger-ca.pem",
    )
    pki.ca.write_bytes(_pem_cert(ca))
    pki.broker_cert.write_bytes(_pem_cert(broker) + _pem_cert(ca))
    pki.broker_key.write_bytes(_pem_key(broker_key))
    pki.broker_keystore.write_bytes(_pem_key(broker_key) + _pem_cert(broker) + _pem_cert(ca))
    pki.client_cert.write_bytes(_pem_cert(client))
    pki.client_key.write_bytes(_pem_key(client_key))
    pki.stranger_ca.write_bytes(_pem_cert(stranger))
    return pki
