"""A test PKI for PayPal: our own CA, leaf and keys (PayPal's private key is PayPal's).

Keys are generated once per process (RSA generation is slow); certificates are cheap and
built per test with the validity, names and issuer the test needs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from payhook.core.clock import Clock
from payhook.core.model import WebhookRequest
from payhook.providers.base import ProviderConfig
from payhook.providers.paypal import PayPalProvider, PayPalSampleSigner, TrustStore
from payhook.providers.paypal.certificates import Deadline

CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-test0001"
SIGNER_NAME = "messageverificationcerts.paypal.com"
WEBHOOK_ID = "8PT597110X687430LM"
NOW = 1_700_000_000  # 2023-11-14T22:13:20Z
NOW_ISO = "2023-11-14T22:13:20Z"


@functools.cache
def rsa_key(index: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def at(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    key: rsa.RSAPrivateKey, name: str = "payhook test root CA", *, until: int = 2045
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at(2020))
        .not_valid_after(at(until))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_intermediate(
    issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey, key: rsa.RSAPrivateKey
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "payhook issuing CA")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at(2021))
        .not_valid_after(at(2044))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA256())
    )


def make_leaf(
    issuer: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    key: rsa.RSAPrivateKey,
    *,
    names: tuple[str, ...] = (SIGNER_NAME,),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    usages: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,),
    issuer_url: str | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or at(2023))
        .not_valid_after(not_after or at(2043))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if issuer_url is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(issuer_url),
                    )
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)


@dataclass
class FakeFetcher:
    """Serves fixed documents by URL and records every fetch; unknown URLs fail."""

    documents: dict[str, bytes] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def __call__(self, url: str, deadline: Deadline) -> list[bytes]:
        self.fetched.append(url)
        if url not in self.documents:
            raise OSError("HTTP 404")
        return [self.documents[url]]


def delivery(
    body: bytes,
    key: rsa.RSAPrivateKey,
    *,
    webhook_id: str = WEBHOOK_ID,
    time: str = NOW_ISO,
    transmission_id: str = "1c6772d0-5106-11ef-9b66-89f3f924d48a",
    cert_url: str = CERT_URL,
) -> WebhookRequest:
    """A delivery signed the way PayPal signs, with ``key`` (by the package's sample signer)."""
    return PayPalSampleSigner(key, cert_url).request(body, webhook_id, time, transmission_id)


def provider_with_test_pki(config: ProviderConfig, clock: Clock) -> PayPalProvider:
    """A PayPal provider as configured whose samples verify, no network involved: it trusts
    the test CA, fetches the test leaf from CERT_URL in memory and signs with the leaf's key
    (how the provider contract, ``test_contract.py``, can build one)."""
    ca = make_ca(rsa_key(0))
    return PayPalProvider(
        config,
        clock,
        trust_store=TrustStore([ca]),
        fetcher=FakeFetcher({CERT_URL: pem(make_leaf(ca, rsa_key(0), rsa_key(1)))}),
        sample_signer=PayPalSampleSigner(rsa_key(1), CERT_URL),
    )
