"""Certificate chains by URL, fetched once at a time, at a bounded rate, within a deadline.

Every forged delivery may name a new certificate URL, so fetching is what an attacker can make
payhook do for free. The cache keeps that bounded:

- URLs are normalized first (no query or fragment, lower-case host, no port): one key each;
- positive cache: a bounded LRU; an entry lasts until its leaf's notAfter;
- negative cache: a URL whose fetch or validation failed is refused for a while, unfetched;
- single flight: deliveries naming a URL being fetched wait for that one fetch;
- fetch rate: a token bucket over all URLs; over it, a delivery that needs a new certificate
  is refused (a VerificationError: PayPal retries later) and nothing is remembered about it;
- deadline: a fetch (leaf and AIA issuer) ends within ``fetch_deadline_seconds``, and a
  delivery waits for one at most that long;
- fetches run on a small executor of their own, never on the threads deliveries need.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

from payhook.core.clock import Clock, system_clock
from payhook.errors import ConfigError, VerificationError, certificate_error
from payhook.providers.paypal.certificates.chain import CertificateChain, build_chain
from payhook.providers.paypal.certificates.fetching import (
    MAX_DOWNLOAD_BYTES,
    CertificateFetcher,
    Deadline,
    HttpCertificateFetcher,
    fetch_bytes,
)
from payhook.providers.paypal.certificates.urls import normalize_cert_url

_Outcome = CertificateChain | str  # a chain, or why there is none


class FetchRate:
    """A token bucket: ``burst`` fetches at once, then ``per_second``."""

    def __init__(self, per_second: float, burst: int, monotonic: Clock = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self._monotonic = monotonic
        self._tokens = float(burst)
        self._updated: float | None = None

    def take(self) -> bool:
        """One token if there is one (not thread-safe: the cache calls it under its lock)."""
        now = self._monotonic()
        if self._updated is not None:
            refill = max(0.0, now - self._updated) * self.per_second
            self._tokens = min(float(self.burst), self._tokens + refill)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass(frozen=True, slots=True)
class _Entry:
    chain: CertificateChain
    not_after: float  # unix time: the leaf's notAfter


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    until: float  # monotonic


@dataclass(frozen=True, slots=True)
class _Flight:
    future: Future[_Outcome]
    deadline: Deadline


class CertificateCache:
    """Fetches and caches certificate chains by normalized URL (see the module docstring)."""

    def __init__(
        self,
        fetcher: CertificateFetcher | None = None,
        *,
        clock: Clock = system_clock,
        monotonic: Clock = time.monotonic,
        max_entries: int = 16,
        max_failures: int = 256,
        failure_ttl_seconds: float = 60.0,
        fetches_per_second: float = 2.0,
        fetch_burst: int = 4,
        fetch_deadline_seconds: float = 5.0,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        fetch_workers: int = 2,
        executor: Executor | None = None,
    ) -> None:
        for name, value in (
            ("max_entries", max_entries),
            ("max_failures", max_failures),
            ("failure_ttl_seconds", failure_ttl_seconds),
            ("fetches_per_second", fetches_per_second),
            ("fetch_burst", fetch_burst),
            ("fetch_deadline_seconds", fetch_deadline_seconds),
            ("max_download_bytes", max_download_bytes),
            ("fetch_workers", fetch_workers),
        ):
            if not value > 0:
                raise ConfigError(f"CertificateCache {name}: got {value!r}, expected above 0")
        self._fetcher = fetcher or HttpCertificateFetcher()
        self._clock = clock
        self._monotonic = monotonic
        self._max_entries = max_entries
        self._max_failures = max_failures
        self._failure_ttl = failure_ttl_seconds
        self._deadline_seconds = fetch_deadline_seconds
        self._max_bytes = max_download_bytes
        self._workers = fetch_workers
        self._executor = executor
        self._rate = FetchRate(fetches_per_second, fetch_burst, monotonic)
        self._chains: OrderedDict[str, _Entry] = OrderedDict()
        self._failures: OrderedDict[str, _Failure] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()

    def chain(self, url: str) -> CertificateChain:
        """The chain served at ``url``; VerificationError naming the reason otherwise (URL
        policy, a recent failure, the fetch rate, the deadline, the fetch, the download)."""
        key = normalize_cert_url(url)
        with self._lock:
            cached = self._lookup(key)
            if cached is not None:
                return cached
            flight = self._flights.get(key) or self._start(key)
        return self._wait(flight)

    def reject(self, url: str, reason: str) -> None:
        """Forget the chain at ``url`` and refuse it like a failed fetch (it did not validate)."""
        key = normalize_cert_url(url)
        with self._lock:
            self._chains.pop(key, None)
            self._remember_failure(key, reason)

    # under the lock ----------------------------------------------------------------------

    def _lookup(self, key: str) -> CertificateChain | None:
        entry = self._chains.get(key)
        if entry is not None:
            if self._clock() <= entry.not_after:
                self._chains.move_to_end(key)
                return entry.chain
            del self._chains[key]  # a URL names one certificate: no point fetching it again
            self._remember_failure(key, "certificate is expired")
        failure = self._failures.get(key)
        if failure is not None:
            if self._monotonic() < failure.until:
                raise certificate_error(f"certificate URL failed recently: {failure.reason}")
            del self._failures[key]
        return None

    def _start(self, key: str) -> _Flight:
        if not self._rate.take():
            raise certificate_error(
                "certificate fetch rate exceeded: a new certificate must wait for a later retry"
            )
        deadline = Deadline(self._deadline_seconds, self._monotonic)
        try:
            future = self._pool().submit(self._fetch, key, deadline)
        except RuntimeError as exc:  # the executor is shut down (interpreter exit)
            raise certificate_error("certificate fetching has stopped") from exc
        # The fetch ends by taking the lock, so it cannot finish before its flight is listed.
        flight = self._flights[key] = _Flight(future, deadline)
        return flight

    def _pool(self) -> Executor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._workers, thread_name_prefix="payhook-paypal-certificates"
            )
        return self._executor

    def _remember_failure(self, key: str, reason: str) -> None:
        self._failures.pop(key, None)
        self._failures[key] = _Failure(reason, self._monotonic() + self._failure_ttl)
        while len(self._failures) > self._max_failures:
            self._failures.popitem(last=False)

    def _store(self, key: str, chain: CertificateChain) -> None:
        self._chains[key] = _Entry(chain, chain.leaf.not_valid_after_utc.timestamp())
        self._chains.move_to_end(key)
        while len(self._chains) > self._max_entries:
            self._chains.popitem(last=False)

    # on the fetch executor ---------------------------------------------------------------

    def _fetch(self, key: str, deadline: Deadline) -> _Outcome:
        outcome: _Outcome = "could not fetch the certificate"
        try:
            outcome = self._download(key, deadline)
        except VerificationError as exc:
            outcome = str(exc)
        except Exception:  # noqa: S110  a bug must still end as a verification failure
            pass
        finally:
            with self._lock:
                self._flights.pop(key, None)
                if isinstance(outcome, str):
                    self._remember_failure(key, outcome)
                else:
                    self._store(key, outcome)
        return outcome

    def _download(self, key: str, deadline: Deadline) -> CertificateChain:
        chain = build_chain(
            key, lambda url: fetch_bytes(self._fetcher, url, deadline, self._max_bytes)
        )
        if deadline.left() <= 0:  # an issuer fetch cut short must not leave a partial chain
            raise certificate_error(deadline.reason)
        if self._clock() > chain.leaf.not_valid_after_utc.timestamp():
            raise certificate_error("certificate is expired")
        return chain

    # on the delivery's thread ------------------------------------------------------------

    def _wait(self, flight: _Flight) -> CertificateChain:
        try:
            outcome = flight.future.result(timeout=flight.deadline.left())
        except TimeoutError:
            raise certificate_error(flight.deadline.reason) from None
        except Exception as exc:  # cancelled: the executor shut down
            raise certificate_error("could not fetch the certificate") from exc
        if isinstance(outcome, str):
            raise certificate_error(outcome)
        return outcome
