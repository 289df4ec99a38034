"""PayPal signing certificates: URL policy, fetching, caching and chain validation.

A PayPal delivery names the certificate that verifies it (``PAYPAL-CERT-URL``), so the URL and
the certificate are attacker input until proven otherwise: ``urls`` says which URLs may be
fetched and spells each one way, ``fetching`` bounds one fetch (deadline, size), ``cache`` bounds
them all (caches, single flight, rate, executor) and ``chain`` validates what was fetched.
"""

from payhook.providers.paypal.certificates.cache import CertificateCache, FetchRate
from payhook.providers.paypal.certificates.chain import (
    CertificateChain,
    TrustStore,
    build_chain,
    default_trust_store_path,
    parse_certificates,
    paypal_public_key,
)
from payhook.providers.paypal.certificates.fetching import (
    MAX_DOWNLOAD_BYTES,
    CertificateFetcher,
    Deadline,
    HttpCertificateFetcher,
    fetch_bytes,
)
from payhook.providers.paypal.certificates.urls import (
    AIA_HOSTS,
    check_aia_url,
    check_cert_url,
    normalize_cert_url,
)

__all__ = [
    "AIA_HOSTS",
    "MAX_DOWNLOAD_BYTES",
    "CertificateCache",
    "CertificateChain",
    "CertificateFetcher",
    "Deadline",
    "FetchRate",
    "HttpCertificateFetcher",
    "TrustStore",
    "build_chain",
    "check_aia_url",
    "check_cert_url",
    "default_trust_store_path",
    "fetch_bytes",
    "normalize_cert_url",
    "parse_certificates",
    "paypal_public_key",
]
