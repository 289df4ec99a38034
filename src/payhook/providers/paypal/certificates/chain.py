"""Certificate chains: assembling one from a download, and validating it against trust anchors.

The certificate must chain to the trust store at the injected time, carry a
``messageverificationcerts[.<env>].paypal.com`` name (the rule of PayPal's Java SDK) in its
subjectAltName, and be valid for TLS server authentication (a public CA's certificate).
PayPal serves the leaf alone; its issuer comes from the leaf's AIA ``caIssuers`` URL, fetched
only from ``AIA_HOSTS`` (it is verified against the trust store like any intermediate).
"""

from __future__ import annotations

import re
import ssl
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import AuthorityInformationAccessOID
from cryptography.x509.verification import PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as X509VerificationError

from payhook.errors import ConfigError, VerificationError, certificate_error
from payhook.providers.paypal.certificates.urls import check_aia_url

_MAX_CERTIFICATES = 5
_PAYPAL_SIGNER = re.compile(r"^messageverificationcerts(\.[a-z0-9-]+)*\.paypal\.com$")


@dataclass(frozen=True, slots=True)
class CertificateChain:
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM bundle or of one DER certificate."""
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise certificate_error("certificate download is not a certificate") from exc


def build_chain(url: str, fetch: Callable[[str], bytes]) -> CertificateChain:
    """The chain served at ``url``, completed with the leaf's AIA issuer when it is missing.
    ``fetch`` raises VerificationError; so does this."""
    certificates = parse_certificates(fetch(url))
    if not certificates or len(certificates) > _MAX_CERTIFICATES:
        raise certificate_error(
            f"certificate download must hold 1 to {_MAX_CERTIFICATES} certificates"
        )
    leaf, intermediates = certificates[0], list(certificates[1:])
    if not any(c.subject == leaf.issuer for c in intermediates):
        intermediates.extend(_issuer_from_aia(leaf, fetch))
    return CertificateChain(leaf, tuple(intermediates))


def _issuer_from_aia(
    leaf: x509.Certificate, fetch: Callable[[str], bytes]
) -> list[x509.Certificate]:
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    for description in aia:
        location = description.access_location
        if description.access_method != AuthorityInformationAccessOID.CA_ISSUERS:
            continue
        if not isinstance(location, x509.UniformResourceIdentifier):
            continue
        try:
            check_aia_url(location.value)
            return parse_certificates(fetch(location.value))[:1]
        except VerificationError:
            continue  # the chain may still validate if the issuer is a trust anchor
    return []


class TrustStore:
    """Trust anchors for PayPal certificate chains."""

    def __init__(self, certificates: Sequence[x509.Certificate]) -> None:
        if not certificates:
            raise ConfigError("a PayPal trust store needs at least one certificate")
        self.store = Store(list(certificates))

    @classmethod
    def from_pem(cls, data: bytes) -> TrustStore:
        certificates: list[x509.Certificate] = []
        # One unparseable entry in a system bundle must not discard the others.
        for block in re.findall(
            rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.DOTALL
        ):
            try:
                with warnings.catch_warnings():
                    # Old roots in system bundles have RFC-violating serials; still usable.
                    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                    certificates.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
        return cls(certificates)

    @classmethod
    def from_file(cls, path: str | Path) -> TrustStore:
        try:
            return cls.from_pem(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read PayPal trust store {str(path)!r}: {exc}") from exc


def default_trust_store_path() -> str:
    """The system CA bundle, else certifi's; ConfigError when neither exists."""
    paths = ssl.get_default_verify_paths()
    candidates = [paths.cafile, paths.openssl_cafile]
    try:
        import certifi  # optional: consulted only when the system has no CA bundle

        candidates.append(certifi.where())
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise ConfigError("no CA bundle found for PayPal certificates; set trust_store")


def paypal_public_key(chain: CertificateChain, trust: TrustStore, at: float) -> RSAPublicKey:
    """Validate the chain at unix time ``at``; returns the leaf's RSA key or raises."""
    leaf = chain.leaf
    when = datetime.fromtimestamp(at, UTC)
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise certificate_error("certificate is expired or not yet valid")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except (x509.ExtensionNotFound, ValueError):
        names = []
    signer_names = [n for n in names if _PAYPAL_SIGNER.match(n)]
    if not signer_names:
        raise certificate_error("certificate is not a PayPal message verification certificate")
    builder = PolicyBuilder().store(trust.store).time(when).max_chain_depth(4)
    for name in signer_names:
        try:
            verifier = builder.build_server_verifier(x509.DNSName(name))
            verifier.verify(leaf, list(chain.intermediates))
            break
        except (X509VerificationError, ValueError):
            continue
    else:
        raise certificate_error("certificate chain is not trusted")
    key = leaf.public_key()
    if not isinstance(key, RSAPublicKey):
        raise certificate_error("certificate key is not RSA")
    return key
