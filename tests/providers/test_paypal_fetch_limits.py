"""PayPal certificate fetching under attack: forged deliveries naming new certificate URLs.

``PAYPAL-CERT-URL`` is unsigned, so every forged delivery can name a new URL. These tests show
what that costs: nothing for query spellings, at most the fetch rate for new paths, one fetch
for many deliveries naming one URL, and never more than the deadline, while deliveries whose
certificate is cached verify as usual. All fetchers are local fakes; loops are bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from payhook.core.model import WebhookRequest
from payhook.errors import VerificationError
from payhook.providers.base import ProviderConfig
from payhook.providers.paypal import PayPalProvider, TrustStore
from payhook.providers.paypal.certificates import CertificateCache, Deadline
from tests.conftest import FakeClock, load_event
from tests.providers.paypal_pki import (
    CERT_URL,
    NOW,
    WEBHOOK_ID,
    FakeFetcher,
    delivery,
    make_ca,
    make_leaf,
    pem,
    rsa_key,
)

BODY = load_event("paypal", "vector-body.json")
CERTS = "https://api.paypal.com/v1/notifications/certs"


@dataclass
class GatedFetcher:
    """Holds every fetch until ``release`` (10 s at most), then serves it or answers 404."""

    documents: dict[str, bytes]
    fetched: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, url: str, deadline: Deadline) -> list[bytes]:
        self.fetched.append(url)
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.release.wait(timeout=10)
        if url not in self.documents:
            raise OSError("HTTP 404")
        return [self.documents[url]]


@dataclass
class DrippingFetcher:
    """A server sending one byte per 0.1 s of ``clock``, for ever (100 000 bytes at most)."""

    clock: FakeClock
    sent: int = 0
    closed: bool = False

    def __call__(self, url: str, deadline: Deadline) -> Iterator[bytes]:
        try:
            for _ in range(100_000):
                self.clock.advance(0.1)
                self.sent += 1
                yield b"-"
        finally:
            self.closed = True


def _provider(cache: CertificateCache, clock: FakeClock | None = None) -> PayPalProvider:
    config = ProviderConfig.from_mapping("paypal", {"type": "paypal", "webhook_id": WEBHOOK_ID})
    trust = TrustStore([make_ca(rsa_key(0))])
    return PayPalProvider(config, clock or FakeClock(NOW), trust_store=trust, certificates=cache)


def _leaf_pem() -> bytes:
    return pem(make_leaf(make_ca(rsa_key(0)), rsa_key(0), rsa_key(1)))


def _forged(cert_url: str) -> WebhookRequest:
    return delivery(BODY, rsa_key(3), cert_url=cert_url)  # signed with a key of the attacker's


def _outcome(provider: PayPalProvider, request: WebhookRequest) -> Any:
    try:
        return provider.verify(request)
    except Exception as exc:  # the test checks the type
        return exc


@pytest.mark.parametrize("spelling", ["?x={n}", "?", "#{n}", "?x={n}#y"])
def test_forged_deliveries_with_query_or_fragment_urls_are_refused_without_a_fetch(
    spelling: str,
) -> None:
    fetcher = FakeFetcher({CERT_URL: _leaf_pem()})
    provider = _provider(CertificateCache(fetcher))
    for n in range(120):
        with pytest.raises(VerificationError, match="query or fragment"):
            provider.verify(_forged(CERT_URL + spelling.format(n=n)))
    assert fetcher.fetched == []
    assert provider.verify(delivery(BODY, rsa_key(1)))


def test_a_flood_of_new_certificate_paths_costs_at_most_the_rate_and_cached_deliveries_go_on() -> (
    None
):
    fetcher = GatedFetcher({CERT_URL: _leaf_pem()})
    monotonic = FakeClock(0)  # frozen: no token comes back during the flood
    cache = CertificateCache(fetcher, monotonic=monotonic, fetches_per_second=2, fetch_burst=4)
    provider = _provider(cache)
    fetcher.release.set()
    assert provider.verify(delivery(BODY, rsa_key(1)))  # the genuine certificate, now cached
    fetcher.release.clear()
    fetcher.entered.clear()
    forged = [_forged(f"{CERTS}/CERT-forged-{n}") for n in range(120)]
    with ThreadPoolExecutor(max_workers=32) as server_threads:
        pending = [server_threads.submit(_outcome, provider, request) for request in forged]
        assert fetcher.entered.wait(timeout=5)  # forged fetches are under way, held open
        # Verified while every forged fetch is still held: it waited on none of them.
        verified = provider.verify(delivery(BODY, rsa_key(1), transmission_id="genuine-2"))
        held = not fetcher.release.is_set()
        fetcher.release.set()
        outcomes = [p.result(timeout=30) for p in pending]
    assert verified[0].event_id == "WH-58D329510W468432D-8HN650336L201105X"
    assert held
    assert len(fetcher.fetched) - 1 <= 3  # the burst of 4, one spent on the genuine certificate
    assert all(type(outcome) is VerificationError for outcome in outcomes)
    assert sum("rate exceeded" in str(outcome) for outcome in outcomes) >= 117


def test_concurrent_deliveries_naming_one_new_certificate_share_one_fetch() -> None:
    fetcher = GatedFetcher({CERT_URL: _leaf_pem()})
    provider = _provider(CertificateCache(fetcher))
    together = threading.Barrier(16)

    def deliver(n: int) -> Any:
        together.wait(timeout=5)
        return provider.verify(delivery(BODY, rsa_key(1), transmission_id=f"delivery-{n}"))

    with ThreadPoolExecutor(max_workers=16) as server_threads:
        pending = [server_threads.submit(deliver, n) for n in range(16)]
        assert fetcher.entered.wait(timeout=5)
        time.sleep(0.2)  # the other deliveries arrive while the one fetch is held
        fetcher.release.set()
        outcomes = [p.result(timeout=30) for p in pending]
    assert fetcher.fetched == [CERT_URL]
    assert all(event.event_type == "PAYMENT.CAPTURE.COMPLETED" for [event] in outcomes)


def test_fetches_run_on_their_own_threads_not_the_deliverys() -> None:
    fetcher = GatedFetcher({CERT_URL: _leaf_pem()})
    fetcher.release.set()
    _provider(CertificateCache(fetcher)).verify(delivery(BODY, rsa_key(1)))
    assert fetcher.threads
    assert threading.current_thread().name not in fetcher.threads


def test_a_server_dripping_bytes_for_ever_is_cut_at_the_overall_deadline() -> None:
    monotonic = FakeClock(0)
    dripping = DrippingFetcher(monotonic)
    cache = CertificateCache(dripping, monotonic=monotonic, fetch_deadline_seconds=5)
    with pytest.raises(VerificationError, match="exceeded its 5 s deadline") as caught:
        _provider(cache).verify(delivery(BODY, rsa_key(1)))
    assert type(caught.value) is VerificationError
    assert dripping.sent <= 51  # 5 s of one byte per 0.1 s
    assert dripping.closed


def test_a_delivery_waits_for_a_stuck_fetch_at_most_the_deadline() -> None:
    fetcher = GatedFetcher({CERT_URL: _leaf_pem()})  # ignores the deadline: held until released
    provider = _provider(CertificateCache(fetcher, fetch_deadline_seconds=0.2))
    try:
        started = time.monotonic()
        with pytest.raises(VerificationError, match="deadline"):
            provider.verify(delivery(BODY, rsa_key(1)))
        with pytest.raises(VerificationError, match="deadline"):  # joins the stuck fetch
            provider.verify(delivery(BODY, rsa_key(1), transmission_id="second"))
        assert time.monotonic() - started < 2.0
    finally:
        fetcher.release.set()
    assert fetcher.fetched == [CERT_URL]


def test_a_download_larger_than_the_limit_is_refused() -> None:
    fetcher = FakeFetcher({CERT_URL: b"-" * 70_000})
    with pytest.raises(VerificationError, match="larger than 65536 bytes"):
        CertificateCache(fetcher).chain(CERT_URL)


def test_a_failed_url_is_refused_unfetched_in_every_spelling_naming_the_reason() -> None:
    fetcher = FakeFetcher()  # 404 for everything
    cache = CertificateCache(fetcher)
    with pytest.raises(VerificationError, match="could not fetch"):
        cache.chain(f"{CERTS}/CERT-1")
    for spelling in (
        f"{CERTS}/CERT-1",
        "https://API.PayPal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com:443/v1/notifications/certs/CERT-1",
    ):
        with pytest.raises(VerificationError, match="failed recently: could not fetch") as caught:
            cache.chain(spelling)
        assert type(caught.value) is VerificationError
    assert fetcher.fetched == [f"{CERTS}/CERT-1"]


def test_over_the_fetch_rate_a_new_certificate_is_refused_until_a_token_returns() -> None:
    urls = [f"{CERTS}/CERT-{n}" for n in range(3)]
    fetcher = FakeFetcher(dict.fromkeys(urls, _leaf_pem()))
    monotonic = FakeClock(0)
    cache = CertificateCache(fetcher, monotonic=monotonic, fetches_per_second=2, fetch_burst=2)
    cache.chain(urls[0])
    cache.chain(urls[1])
    with pytest.raises(VerificationError, match="fetch rate exceeded") as caught:
        cache.chain(urls[2])
    assert type(caught.value) is VerificationError
    assert cache.chain(urls[0])  # cached certificates cost no token
    monotonic.advance(0.5)  # one token back; the refusal was not remembered as a failure
    assert cache.chain(urls[2])
    assert fetcher.fetched == urls


def test_a_chain_that_fails_validation_is_dropped_and_refused_unfetched() -> None:
    rogue = make_ca(rsa_key(3), "rogue root")
    fetcher = FakeFetcher({CERT_URL: pem(make_leaf(rogue, rsa_key(3), rsa_key(1)))})
    provider = _provider(CertificateCache(fetcher))
    with pytest.raises(VerificationError, match="not trusted"):
        provider.verify(delivery(BODY, rsa_key(1)))
    with pytest.raises(VerificationError, match="failed recently: certificate chain is not"):
        provider.verify(delivery(BODY, rsa_key(1), transmission_id="second"))
    assert fetcher.fetched == [CERT_URL]
