"""Which URLs payhook fetches certificates from, and the one spelling of each.

``PAYPAL-CERT-URL`` is unsigned attacker input until the certificate it names verifies, so it
must be ``https`` on ``paypal.com`` (or a subdomain), port 443, without userinfo, query or
fragment. A query or fragment would make endless spellings of one resource (``?x=1``,
``?x=2``, ...), each a cache miss; PayPal's certificate URLs have neither. The normalized URL
(lower-case host, no port) is what payhook fetches and the key of every cache.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from payhook.errors import certificate_error

#: Hosts the issuer certificate named in a leaf's AIA extension may be fetched from.
AIA_HOSTS = frozenset({"cacerts.digicert.com"})
_MAX_URL_LENGTH = 2048
_URL_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces or controls
_HOST = re.compile(r"^[a-z0-9.-]+$")
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _checked_url(url: str, schemes: frozenset[str]) -> tuple[SplitResult, str]:
    """(parts, host) of a URL without userinfo, odd characters or a non-default port."""
    if len(url) > _MAX_URL_LENGTH or not _URL_CHARS.match(url) or "\\" in url:
        raise certificate_error("certificate URL contains characters that are not allowed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise certificate_error("certificate URL is malformed") from exc
    if parts.scheme not in schemes:
        raise certificate_error(f"certificate URL must use {' or '.join(sorted(schemes))}")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise certificate_error("certificate URL must not contain userinfo")
    host = parts.hostname or ""  # lower-cased by urlsplit
    if not _HOST.match(host):
        raise certificate_error("certificate URL host is malformed")
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        raise certificate_error("certificate URL must use the default port")
    return parts, host


def normalize_cert_url(url: str) -> str:
    """``https://<lower-case host><path>`` of a policy-valid certificate URL, else a
    VerificationError: not https on paypal.com (or a subdomain), a port other than 443,
    userinfo, a query or a fragment."""
    parts, host = _checked_url(url, frozenset({"https"}))
    if host != "paypal.com" and not host.endswith(".paypal.com"):
        raise certificate_error("certificate URL host is not paypal.com")
    if "?" in url or "#" in url:  # even an empty one ("...?"): no second spelling
        raise certificate_error("certificate URL must not have a query or fragment")
    return f"https://{host}{parts.path or '/'}"


def check_cert_url(url: str) -> None:
    """Reject any URL that :func:`normalize_cert_url` refuses."""
    normalize_cert_url(url)


def check_aia_url(url: str) -> None:
    """Reject an issuer URL outside :data:`AIA_HOSTS` (http is allowed: the issuer is verified
    against the trust store like any intermediate)."""
    _, host = _checked_url(url, frozenset({"http", "https"}))
    if host not in AIA_HOSTS:
        raise certificate_error("issuer certificate URL host is not an allowed CA repository")
