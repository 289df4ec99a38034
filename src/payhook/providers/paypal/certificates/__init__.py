"""PayPal signing certificates: URL policy, fetching, caching and chain validation.

A PayPal delivery names the certificate that verifies it (``PAYPAL-CERT-URL``), so the URL and
the certificate are attacker input until proven otherwise: ``urls`` says which URLs may be
fetched and spells each one way, ``fetching`` bounds one fetch (deadline, size), ``cache`` bounds
them all (caches, single flight, rate, executor) and ``chain`` validates what was fetched.
"""

from payhook.providers.paypal.certificates.cache import CertificateCache
from payhook.providers.paypal.certificates.chain import (
    CertificateChain,
    TrustStore,
    default_trust_store_path,
    paypal_public_key,
)
from payhook.providers.paypal.certificates.fetching import (
    CertificateFetcher,
    Deadline,
    HttpCertificateFetcher,
    fetch_bytes,
)
from payhook.providers.paypal.certificates.urls import check_cert_url, normalize_cert_url

__all__ = [
    "CertificateCache",
    "CertificateChain",
    "CertificateFetcher",
    "Deadline",
    "HttpCertificateFetcher",
    "TrustStore",
    "check_cert_url",
    "default_trust_store_path",
    "fetch_bytes",
    "normalize_cert_url",
    "paypal_public_key",
]
