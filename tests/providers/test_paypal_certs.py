"""PayPal certificates: URL policy, the fetch cache, AIA issuers and chain validation."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from payhook.errors import ConfigError, VerificationError
from payhook.providers.paypal.certificates import (
    CertificateCache,
    CertificateChain,
    Deadline,
    TrustStore,
    check_cert_url,
    default_trust_store_path,
    normalize_cert_url,
    paypal_public_key,
)
from tests.conftest import FakeClock
from tests.providers.paypal_pki import (
    CERT_URL,
    NOW,
    FakeFetcher,
    at,
    make_ca,
    make_intermediate,
    make_leaf,
    pem,
    rsa_key,
)

ISSUER_URL = "http://cacerts.digicert.com/PayhookTestIssuingCA.crt"
CERTS = "https://api.paypal.com/v1/notifications/certs"


@pytest.mark.parametrize(
    "url",
    [
        "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
        "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
        "https://api-m.paypal.com:443/v1/notifications/certs/CERT-1",
        "https://paypal.com/cert",
        "https://API.PAYPAL.COM/cert",
    ],
)
def test_accepts_https_urls_on_paypal_com(url: str) -> None:
    check_cert_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://api.paypal.com/cert", "must use https"),
        ("ftp://api.paypal.com/cert", "must use https"),
        ("https://evil.example/cert", "not paypal.com"),
        ("https://paypal.com.evil.example/cert", "not paypal.com"),
        ("https://evilpaypal.com/cert", "not paypal.com"),
        ("https://paypal.com@evil.example/cert", "userinfo"),
        ("https://user:pw@api.paypal.com/cert", "userinfo"),
        ("https://api.paypal.com:8443/cert", "default port"),
        ("https://api.paypal.com:99999/cert", "malformed"),
        ("https://evil.example\\@api.paypal.com/cert", "not allowed"),
        ("https://api.paypal.com/ce rt", "not allowed"),
        ("https://api.paypal.com\n.evil.example/cert", "not allowed"),
        ("https://api.p%61ypal.com/cert", "host is malformed"),
        ("https://xn--pypal-4ve.com/cert", "not paypal.com"),
        ("https://api.paypal.com./cert", "not paypal.com"),
        ("https:///cert", "host is malformed"),
        ("https://[::1]/cert", "host is malformed"),
    ],
)
def test_rejects_cert_urls_outside_paypal_without_fetching(url: str, reason: str) -> None:
    fetcher = FakeFetcher({url: b"never served"})
    with pytest.raises(VerificationError, match=reason):
        CertificateCache(fetcher).chain(url)
    assert fetcher.fetched == []


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        (CERT_URL, CERT_URL),
        ("https://API.PayPal.COM/v1/notifications/certs/CERT-1", f"{CERTS}/CERT-1"),
        ("https://api.paypal.com:443/v1/notifications/certs/CERT-1", f"{CERTS}/CERT-1"),
        ("https://paypal.com", "https://paypal.com/"),
    ],
)
def test_normalizes_a_cert_url_to_one_spelling(url: str, normalized: str) -> None:
    assert normalize_cert_url(url) == normalized


@pytest.mark.parametrize(
    "url",
    [f"{CERT_URL}?x=1", f"{CERT_URL}?", f"{CERT_URL}#x", f"{CERT_URL}#", f"{CERT_URL}?x=1#y"],
)
def test_rejects_a_cert_url_with_a_query_or_fragment_without_fetching(url: str) -> None:
    fetcher = FakeFetcher({url: b"never served"})
    with pytest.raises(VerificationError, match="must not have a query or fragment"):
        CertificateCache(fetcher).chain(url)
    assert fetcher.fetched == []


def test_spellings_of_one_url_share_one_cache_entry() -> None:
    _, leaf_pem = _pki()
    fetcher = FakeFetcher({f"{CERTS}/CERT-1": leaf_pem})
    cache = CertificateCache(fetcher)
    first = cache.chain("https://API.PAYPAL.COM:443/v1/notifications/certs/CERT-1")
    assert cache.chain(f"{CERTS}/CERT-1") is first
    assert fetcher.fetched == [f"{CERTS}/CERT-1"]


def _pki() -> tuple[TrustStore, bytes]:
    ca = make_ca(rsa_key(0))
    leaf = make_leaf(ca, rsa_key(0), rsa_key(1))
    return TrustStore([ca]), pem(leaf)


def test_second_lookup_is_served_from_the_cache() -> None:
    _, leaf_pem = _pki()
    fetcher = FakeFetcher({CERT_URL: leaf_pem})
    cache = CertificateCache(fetcher)
    first = cache.chain(CERT_URL)
    second = cache.chain(CERT_URL)
    assert second is first
    assert fetcher.fetched == [CERT_URL]


def test_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    _, leaf_pem = _pki()
    urls = [f"{CERT_URL}-{i}" for i in range(3)]
    fetcher = FakeFetcher(dict.fromkeys(urls, leaf_pem))
    cache = CertificateCache(fetcher, max_entries=2)
    for url in urls:
        cache.chain(url)
    cache.chain(urls[2])  # still cached
    cache.chain(urls[0])  # evicted by urls[2], fetched again
    assert fetcher.fetched == [urls[0], urls[1], urls[2], urls[0]]


def test_failed_fetch_is_remembered_until_its_ttl_ends() -> None:
    clock = FakeClock(NOW)
    fetcher = FakeFetcher()
    cache = CertificateCache(fetcher, monotonic=clock, failure_ttl_seconds=60)
    for _ in range(3):
        with pytest.raises(VerificationError, match="could not fetch"):
            cache.chain(CERT_URL)
    assert fetcher.fetched == [CERT_URL]
    _, fetcher.documents[CERT_URL] = _pki()
    clock.advance(61)
    assert cache.chain(CERT_URL).leaf is not None
    assert fetcher.fetched == [CERT_URL, CERT_URL]


def test_any_fetcher_exception_becomes_a_verification_error() -> None:
    def broken(url: str, deadline: Deadline) -> list[bytes]:
        raise ConnectionResetError("connection reset")

    with pytest.raises(VerificationError, match="could not fetch"):
        CertificateCache(broken).chain(CERT_URL)


@pytest.mark.parametrize("document", [b"", b"<html>502 Bad Gateway</html>", b"\x30\x82garbage"])
def test_rejects_a_download_that_is_not_a_certificate(document: bytes) -> None:
    with pytest.raises(VerificationError, match="not a certificate"):
        CertificateCache(FakeFetcher({CERT_URL: document})).chain(CERT_URL)


def test_rejects_a_download_with_too_many_certificates() -> None:
    _, leaf_pem = _pki()
    with pytest.raises(VerificationError, match="1 to 5"):
        CertificateCache(FakeFetcher({CERT_URL: leaf_pem * 6})).chain(CERT_URL)


def _issued_through_intermediate(issuer_url: str) -> tuple[TrustStore, bytes, bytes]:
    root = make_ca(rsa_key(0))
    intermediate = make_intermediate(root, rsa_key(0), rsa_key(2))
    leaf = make_leaf(intermediate, rsa_key(2), rsa_key(1), issuer_url=issuer_url)
    return TrustStore([root]), pem(leaf), intermediate.public_bytes(Encoding.DER)


def test_fetches_the_missing_issuer_from_the_leafs_aia_url() -> None:
    trust, leaf_pem, issuer_der = _issued_through_intermediate(ISSUER_URL)
    fetcher = FakeFetcher({CERT_URL: leaf_pem, ISSUER_URL: issuer_der})
    chain = CertificateCache(fetcher).chain(CERT_URL)
    assert fetcher.fetched == [CERT_URL, ISSUER_URL]
    assert len(chain.intermediates) == 1
    paypal_public_key(chain, trust, NOW)


def test_never_fetches_an_issuer_from_a_host_outside_the_allow_list() -> None:
    url = "http://169.254.169.254/latest/meta-data/"
    trust, leaf_pem, issuer_der = _issued_through_intermediate(url)
    fetcher = FakeFetcher({CERT_URL: leaf_pem, url: issuer_der})
    chain = CertificateCache(fetcher).chain(CERT_URL)
    assert fetcher.fetched == [CERT_URL]
    with pytest.raises(VerificationError, match="not trusted"):
        paypal_public_key(chain, trust, NOW)


def _chain(**leaf_options: Any) -> CertificateChain:
    ca = make_ca(rsa_key(0))
    return CertificateChain(make_leaf(ca, rsa_key(0), rsa_key(1), **leaf_options), ())


def test_accepts_a_paypal_leaf_issued_by_a_trusted_ca() -> None:
    trust = TrustStore([make_ca(rsa_key(0))])
    key = paypal_public_key(_chain(), trust, NOW)
    assert key.public_numbers() == rsa_key(1).public_key().public_numbers()


def test_accepts_the_sandbox_signer_name() -> None:
    trust = TrustStore([make_ca(rsa_key(0))])
    paypal_public_key(_chain(names=("messageverificationcerts.sandbox.paypal.com",)), trust, NOW)


def test_rejects_a_chain_to_an_untrusted_ca() -> None:
    other = TrustStore([make_ca(rsa_key(3), "another root")])
    with pytest.raises(VerificationError, match="not trusted"):
        paypal_public_key(_chain(), other, NOW)


def test_rejects_a_self_signed_certificate_in_paypals_name() -> None:
    forged = make_leaf(make_ca(rsa_key(1)), rsa_key(1), rsa_key(1))
    trust = TrustStore([make_ca(rsa_key(0))])
    with pytest.raises(VerificationError, match="not trusted"):
        paypal_public_key(CertificateChain(forged, ()), trust, NOW)


@pytest.mark.parametrize(
    "names",
    [
        ("evil.example",),
        ("paypal.com",),
        ("messageverificationcerts.paypal.com.evil.example",),
        ("xmessageverificationcerts.paypal.com",),
    ],
)
def test_rejects_a_trusted_certificate_for_another_name(names: tuple[str, ...]) -> None:
    trust = TrustStore([make_ca(rsa_key(0))])
    with pytest.raises(VerificationError, match="not a PayPal message verification"):
        paypal_public_key(_chain(names=names), trust, NOW)


def test_rejects_an_expired_certificate() -> None:
    trust = TrustStore([make_ca(rsa_key(0))])
    chain = _chain(not_before=at(2021), not_after=at(2022))
    with pytest.raises(VerificationError, match="expired or not yet valid"):
        paypal_public_key(chain, trust, NOW)


def test_rejects_a_certificate_not_yet_valid() -> None:
    trust = TrustStore([make_ca(rsa_key(0))])
    chain = _chain(not_before=at(2030), not_after=at(2031))
    with pytest.raises(VerificationError, match="expired or not yet valid"):
        paypal_public_key(chain, trust, NOW)


def test_rejects_a_chain_whose_ca_has_expired() -> None:
    ca = make_ca(rsa_key(0), until=2023)
    leaf = make_leaf(ca, rsa_key(0), rsa_key(1), not_before=at(2021), not_after=at(2030))
    with pytest.raises(VerificationError, match="not trusted"):
        paypal_public_key(CertificateChain(leaf, ()), TrustStore([ca]), NOW)


def test_rejects_a_certificate_not_meant_for_tls_servers() -> None:
    trust = TrustStore([make_ca(rsa_key(0))])
    chain = _chain(usages=(ExtendedKeyUsageOID.CODE_SIGNING,))
    with pytest.raises(VerificationError, match="not trusted"):
        paypal_public_key(chain, trust, NOW)


def test_trust_store_skips_unparseable_entries_of_a_bundle() -> None:
    good = pem(make_ca(rsa_key(0)))
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    trust = TrustStore.from_pem(broken + good)
    paypal_public_key(_chain(), trust, NOW)


def test_trust_store_without_certificates_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        TrustStore.from_pem(b"not a bundle")


def test_default_trust_store_is_a_readable_bundle() -> None:
    # The system bundle (or certifi's) must load into a usable store.
    TrustStore.from_file(default_trust_store_path())
