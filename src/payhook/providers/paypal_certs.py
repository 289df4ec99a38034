"""PayPal signing certificates: URL policy, fetching, caching and chain validation.

A PayPal delivery names the certificate that verifies it (``PAYPAL-CERT-URL``), so the URL and
the certificate are attacker input until proven otherwise:

- the URL must be ``https`` on ``paypal.com`` or a subdomain, port 443, no userinfo;
- the certificate must chain to the trust store at the injected time, carry a
  ``messageverificationcerts[.<env>].paypal.com`` name (the rule of PayPal's Java SDK) in its
  subjectAltName, and be valid for TLS server authentication (a public CA's certificate).

PayPal serves the leaf alone; its issuer comes from the leaf's AIA ``caIssuers`` URL, fetched
only from ``AIA_HOSTS`` (it is verified against the trust store like any intermediate).
Fetched chains are cached per URL (bounded LRU); failures are cached briefly, so a flood of
forged deliveries cannot turn into a flood of fetches.
"""

from __future__ import annotations

import re
import ssl
import threading
import urllib.error
import urllib.request
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import AuthorityInformationAccessOID
from cryptography.x509.verification import PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as X509VerificationError

from payhook.core.clock import Clock, system_clock
from payhook.errors import ConfigError, VerificationError

CertificateFetcher = Callable[[str], bytes]

AIA_HOSTS = frozenset({"cacerts.digicert.com"})
MAX_DOWNLOAD_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 10.0
_MAX_URL_LENGTH = 2048
_URL_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces or controls
_HOST = re.compile(r"^[a-z0-9.-]+$")
_PAYPAL_SIGNER = re.compile(r"^messageverificationcerts(\.[a-z0-9-]+)*\.paypal\.com$")


def _checked_url(url: str, schemes: frozenset[str]) -> tuple[str, str]:
    """(scheme, host) of a URL without userinfo, odd characters or a non-default port."""
    if len(url) > _MAX_URL_LENGTH or not _URL_CHARS.match(url) or "\\" in url:
        raise VerificationError("certificate URL contains characters that are not allowed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise VerificationError("certificate URL is malformed") from exc
    if parts.scheme not in schemes:
        raise VerificationError(f"certificate URL must use {' or '.join(sorted(schemes))}")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise VerificationError("certificate URL must not contain userinfo")
    host = parts.hostname or ""
    if not _HOST.match(host):
        raise VerificationError("certificate URL host is malformed")
    if port is not None and port != {"https": 443, "http": 80}[parts.scheme]:
        raise VerificationError("certificate URL must use the default port")
    return parts.scheme, host


def check_cert_url(url: str) -> None:
    """Reject any certificate URL that is not https on paypal.com (or a subdomain), port 443."""
    _, host = _checked_url(url, frozenset({"https"}))
    if host != "paypal.com" and not host.endswith(".paypal.com"):
        raise VerificationError("certificate URL host is not paypal.com")


def _check_aia_url(url: str) -> None:
    _, host = _checked_url(url, frozenset({"http", "https"}))
    if host not in AIA_HOSTS:
        raise VerificationError("issuer certificate URL host is not an allowed CA repository")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would leave the host the URL policy approved.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _read_limited(response: object, limit: int) -> bytes:
    data: bytes = response.read(limit + 1)  # type: ignore[attr-defined]
    if len(data) > limit:
        raise OSError(f"response larger than {limit} bytes")
    return data


def urllib_fetch(url: str) -> bytes:
    """Default fetcher: GET with a timeout and a size limit, no redirects, status 200 only."""
    opener = urllib.request.build_opener(_NoRedirect)
    # The caller has checked the URL (scheme and host) before any fetch.
    with opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        return _read_limited(response, MAX_DOWNLOAD_BYTES)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes


class HttpClient(Protocol):
    """What online verification needs from an HTTP client (tests pass an in-memory fake)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpResponse: ...


class UrllibHttpClient:
    """Default HTTP client for PayPal's REST API: timeout, size limit, no redirects."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        opener = urllib.request.build_opener(_NoRedirect)
        # api_base was checked at configuration: https on paypal.com.
        request = urllib.request.Request(  # noqa: S310
            url, data=body, headers=dict(headers), method="POST"
        )
        try:
            with opener.open(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
                return HttpResponse(response.status, _read_limited(response, MAX_DOWNLOAD_BYTES))
        except urllib.error.HTTPError as exc:
            return HttpResponse(exc.code, _read_limited(exc, MAX_DOWNLOAD_BYTES))


@dataclass(frozen=True, slots=True)
class CertificateChain:
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]


def _parse_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise VerificationError("certificate download is not a certificate") from exc


class CertificateCache:
    """Fetches and caches certificate chains by URL (bounded LRU, short negative cache)."""

    def __init__(
        self,
        fetcher: CertificateFetcher = urllib_fetch,
        *,
        clock: Clock = system_clock,
        max_entries: int = 16,
        failure_ttl_seconds: float = 60.0,
    ) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self._max_entries = max_entries
        self._failure_ttl = failure_ttl_seconds
        self._chains: OrderedDict[str, CertificateChain] = OrderedDict()
        self._failures: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def chain(self, url: str) -> CertificateChain:
        """The chain served at ``url``; raises VerificationError (URL policy, fetch, parse)."""
        check_cert_url(url)
        with self._lock:
            cached = self._chains.get(url)
            if cached is not None:
                self._chains.move_to_end(url)
                return cached
            failure = self._failures.get(url)
            if failure is not None and failure[0] > self._clock():
                raise VerificationError(failure[1])
        try:
            chain = self._download(url)
        except VerificationError as exc:
            with self._lock:
                self._failures[url] = (self._clock() + self._failure_ttl, str(exc))
                while len(self._failures) > self._max_entries:
                    self._failures.pop(next(iter(self._failures)))
            raise
        with self._lock:
            self._failures.pop(url, None)
            self._chains[url] = chain
            while len(self._chains) > self._max_entries:
                self._chains.popitem(last=False)
        return chain

    def _fetch(self, url: str) -> bytes:
        try:
            return self._fetcher(url)
        except Exception as exc:  # any transport failure is the same verification failure
            raise VerificationError("could not fetch the certificate") from exc

    def _download(self, url: str) -> CertificateChain:
        certificates = _parse_certificates(self._fetch(url))
        if not certificates or len(certificates) > 5:
            raise VerificationError("certificate download must hold 1 to 5 certificates")
        leaf, intermediates = certificates[0], list(certificates[1:])
        if not any(c.subject == leaf.issuer for c in intermediates):
            intermediates.extend(self._issuer_from_aia(leaf))
        return CertificateChain(leaf, tuple(intermediates))

    def _issuer_from_aia(self, leaf: x509.Certificate) -> list[x509.Certificate]:
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
                _check_aia_url(location.value)
                return _parse_certificates(self._fetch(location.value))[:1]
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
        raise VerificationError("certificate is expired or not yet valid")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except (x509.ExtensionNotFound, ValueError):
        names = []
    signer_names = [n for n in names if _PAYPAL_SIGNER.match(n)]
    if not signer_names:
        raise VerificationError("certificate is not a PayPal message verification certificate")
    builder = PolicyBuilder().store(trust.store).time(when).max_chain_depth(4)
    for name in signer_names:
        try:
            verifier = builder.build_server_verifier(x509.DNSName(name))
            verifier.verify(leaf, list(chain.intermediates))
            break
        except (X509VerificationError, ValueError):
            continue
    else:
        raise VerificationError("certificate chain is not trusted")
    key = leaf.public_key()
    if not isinstance(key, RSAPublicKey):
        raise VerificationError("certificate key is not RSA")
    return key
