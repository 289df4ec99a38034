"""Forward published canonical events from the outbox to a URL, as Standard Webhooks.

Each due row is POSTed to ``outbox.forward_url`` with ``webhook-id`` (the canonical event id),
``webhook-timestamp`` and ``webhook-signature`` headers. A 2xx marks it delivered; anything
else (status, redirect, timeout, refused connection) schedules a retry with exponential
backoff and jitter. After ``max_attempts`` failures the row is given up on and stays in the
table (``SqliteOutbox.failed`` lists those rows, ``SqliteOutbox.retry`` sends them again).

Delivery is at least once: a row is claimed (leased past the request's timeouts) before it is
sent and marked after, so a crash in between sends it again later; receivers drop repeats by
``webhook-id``. Rows may arrive out of order (a failing row backs off while later ones go);
``payment.version`` in the body orders them. The outbox's writes go through the single writer
when the runtime passes one.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from payhook.backends.sqlite.outbox import SqliteOutbox
from payhook.backends.sqlite.schema import WriteExecutor
from payhook.config import OutboxSettings
from payhook.core.clock import Clock, system_clock
from payhook.errors import ConfigError
from payhook.providers.hmac import HmacEngine
from payhook.providers.standard import SCHEME as STANDARD_WEBHOOKS

log = logging.getLogger("payhook.forwarder")

_ERROR_LENGTH = 200


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    gave_up: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.gave_up


def _check_url(url: str) -> str:
    # The URL itself stays out of the messages: it may carry a token.
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises on a malformed port
    except ValueError:
        raise ConfigError("outbox.forward_url: not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"outbox.forward_url: got scheme {parts.scheme!r}, expected http(s)")
    if not host:
        raise ConfigError("outbox.forward_url: got no host, expected http(s)://host/path")
    return url


class OutboxForwarder:
    """Delivers the outbox of one SQLite database; ``run`` in a thread, or ``deliver_due``.

    ``transport`` replaces httpx's network transport (``httpx.MockTransport`` in tests)."""

    def __init__(
        self,
        path: str | Path,
        settings: OutboxSettings,
        clock: Clock = system_clock,
        *,
        writer: WriteExecutor | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_seconds: float = 10.0,
        backoff_base_seconds: float = 5.0,
        backoff_max_seconds: float = 3600.0,
        poll_interval_seconds: float = 1.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not settings.forward_url:
            raise ConfigError("outbox.forward_url is required to forward events")
        if not settings.secret:
            raise ConfigError("outbox.secret is required when outbox.forward_url is set")
        self.url = _check_url(settings.forward_url)
        # Signed as any Standard Webhooks sender signs: the receiver verifies with its library.
        self.signer = HmacEngine(
            STANDARD_WEBHOOKS, [settings.secret], tolerance_seconds=0, clock=clock, where="outbox"
        )
        self.path = path
        self.max_attempts = settings.max_attempts
        self.clock = clock
        self.writer = writer
        self.transport = transport
        self.timeout_seconds = timeout_seconds
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self.jitter = jitter
        # Opened on first use, not here: the runtime builds the forwarder before it has
        # locked and migrated the database.
        self._outbox: SqliteOutbox | None = None
        self._client: httpx.Client | None = None

    @property
    def outbox(self) -> SqliteOutbox:
        if self._outbox is None:
            self._outbox = SqliteOutbox(
                self.path, max_attempts=self.max_attempts, clock=self.clock, writer=self.writer
            )
        return self._outbox

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                transport=self.transport,
                # Every phase bounded: a receiver that stops answering costs one timeout.
                timeout=httpx.Timeout(self.timeout_seconds),
                # A signed event goes to the configured URL only: a redirect is a failure.
                follow_redirects=False,
                headers={"user-agent": "payhook-outbox"},
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None

    def run(self, stop_event: threading.Event) -> None:
        """Deliver until ``stop_event`` is set; waits only when nothing is due.

        One row per pass, so stopping waits for one request at most.
        """
        while not stop_event.is_set():
            try:
                attempted = self.deliver_due(1).attempted
            except Exception:
                log.exception("outbox delivery pass failed; retrying")
                attempted = 0
            if not attempted:
                stop_event.wait(self.poll_interval_seconds)

    def deliver_due(self, limit: int = 50) -> DeliveryReport:
        """Attempt up to ``limit`` rows whose next attempt is due."""
        delivered = retrying = gave_up = 0
        for _ in range(limit):
            # The lease outlasts the request (connect, then the response), so no other
            # forwarder sends the row meanwhile.
            claimed = self.outbox.claim(lease_seconds=2 * self.timeout_seconds)
            if claimed is None:
                break
            failure = self._send(claimed.event_id, claimed.body)
            if failure is None:
                self.outbox.mark_delivered(claimed.event_id)
                log.info("event forwarded", extra={"event_id": claimed.event_id})
                delivered += 1
                continue
            reason, error = failure
            delay = self.backoff(claimed.attempts + 1)
            attempt = self.outbox.record_failure(claimed.event_id, error, delay)
            if attempt is None:  # delivered or removed meanwhile: nothing left to retry
                continue
            log.warning(
                "event forwarding failed",
                extra={
                    "event_id": claimed.event_id,
                    "attempts": attempt.attempts,
                    "gave_up": attempt.gave_up,
                    "reason": reason,
                },
            )
            if attempt.gave_up:
                log.warning(
                    "outbound delivery gave up: `payhook outbox retry` sends it again",
                    extra={"event_id": claimed.event_id, "attempts": attempt.attempts},
                )
                gave_up += 1
            else:
                retrying += 1
        return DeliveryReport(delivered, retrying, gave_up)

    def _send(self, event_id: str, body: str) -> tuple[str, str] | None:
        """POST one event; None on a 2xx, else (reason, detail), neither holding the body."""
        data = body.encode()
        timestamp = int(self.clock())
        headers = {"content-type": "application/json"}
        headers |= self.signer.sign(data, timestamp=timestamp, message_id=event_id)
        try:
            # Streamed and never read: the status is the whole answer, and a receiver that
            # sends a large or endless body cannot hold the forwarder or fill its memory.
            with self.client.stream("POST", self.url, content=data, headers=headers) as response:
                status = response.status_code
        except Exception as exc:
            # No answer (refused, reset, timed out, bad TLS, a header httpx cannot encode...):
            # whatever the cause, it counts as an attempt, so a row that can never be sent
            # is given up on after max_attempts instead of retried forever uncounted.
            return type(exc).__name__, f"{type(exc).__name__}: {exc}"[:_ERROR_LENGTH]
        return None if 200 <= status < 300 else (f"HTTP {status}", f"HTTP {status}")

    def backoff(self, attempts: int) -> float:
        """Delay after the ``attempts``-th failure: doubling from the base, capped, with
        "equal jitter" (between half and all of it) so retries of many rows spread out."""
        exponent = min(attempts - 1, 62)  # beyond that the cap applies anyway
        delay = min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0**exponent)
        return delay * (0.5 + 0.5 * self.jitter())
