"""Forward published canonical events from the outbox table to a URL, as Standard Webhooks.

Each undelivered row is POSTed to ``outbox.forward_url`` with ``webhook-id`` (the canonical
event id), ``webhook-timestamp`` and ``webhook-signature`` headers. A 2xx marks it delivered;
anything else (status, redirect, timeout, refused connection) schedules a retry with
exponential backoff and jitter. After ``max_attempts`` failures the row stays in the table,
undelivered, with ``attempts = max_attempts`` and ``last_error`` starting with ``gave up``:
``failed()`` lists those rows and ``retry_failed()`` sends them again.

Delivery is at least once: a row is claimed (its next attempt pushed past the request timeout)
before it is sent and marked after, so a crash in between sends it again later; receivers drop
repeats by ``webhook-id``. Rows may arrive out of order (a failing row backs off while later
ones go); ``payment.version`` in the body orders them.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from payhook.backends.sqlite.schema import Transaction, connect
from payhook.config import OutboxSettings
from payhook.core.clock import Clock, system_clock
from payhook.errors import ConfigError
from payhook.providers.standard import decode_secret, standard_signature

log = logging.getLogger("payhook.forwarder")

#: ``http_post(url, body, headers, timeout_seconds) -> HTTP status``; raises when no response.
HttpPost = Callable[[str, bytes, Mapping[str, str], float], int]

_RESPONSE_READ_LIMIT = 64 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A signed event goes to the configured URL only: a redirect is a failed delivery."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST with the standard library; returns the status, following no redirect."""
    _check_url(url)  # urllib would also open file: and ftp: URLs
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(_RESPONSE_READ_LIMIT)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    gave_up: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.gave_up


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    event_id: str
    attempts: int
    last_error: str
    created_at: float


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
    """Delivers the outbox of one SQLite database; ``run`` in a thread, or ``deliver_due``."""

    def __init__(
        self,
        path: str | Path,
        settings: OutboxSettings,
        clock: Clock = system_clock,
        http_post: HttpPost = urllib_post,
        *,
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
        self.key = decode_secret(settings.secret)
        if not self.key:
            raise ConfigError("outbox.secret decodes to an empty key")
        self.path = path
        self.max_attempts = settings.max_attempts
        self.clock = clock
        self.http_post = http_post
        self.timeout_seconds = timeout_seconds
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self.jitter = jitter
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
            claimed = self._claim()
            if claimed is None:
                break
            event_id, body, attempts = claimed
            failure = self._send(event_id, body)
            if failure is None:
                self._mark_delivered(event_id)
                delivered += 1
            elif self._mark_failed(event_id, attempts + 1, *failure):
                gave_up += 1
            else:
                retrying += 1
        return DeliveryReport(delivered, retrying, gave_up)

    def failed(self) -> list[FailedDelivery]:
        rows = self.conn.execute(
            "SELECT event_id, attempts, last_error, created_at FROM outbox"
            " WHERE delivered_at IS NULL AND attempts >= ? ORDER BY created_at, event_id",
            (self.max_attempts,),
        ).fetchall()
        return [FailedDelivery(*row) for row in rows]

    def retry_failed(self) -> int:
        """Give every row that was given up on a fresh set of attempts, due now."""
        with Transaction(self.conn) as conn:
            return conn.execute(
                "UPDATE outbox SET attempts = 0, next_attempt_at = ?"
                " WHERE delivered_at IS NULL AND attempts >= ?",
                (self.clock(), self.max_attempts),
            ).rowcount

    # internals -------------------------------------------------------------------------

    def _claim(self) -> tuple[str, str, int] | None:
        now = self.clock()
        with Transaction(self.conn) as conn:
            row = conn.execute(
                "SELECT event_id, body, attempts FROM outbox WHERE delivered_at IS NULL"
                " AND next_attempt_at <= ? AND attempts < ?"
                " ORDER BY next_attempt_at, created_at, event_id LIMIT 1",
                (now, self.max_attempts),
            ).fetchone()
            if row is None:
                return None
            # The lease outlasts the request, so no other forwarder sends the row meanwhile.
            conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE event_id = ?",
                (now + 2 * self.timeout_seconds, row["event_id"]),
            )
        return row["event_id"], row["body"], row["attempts"]

    def _send(self, event_id: str, body: str) -> tuple[str, str] | None:
        """POST one event; None on a 2xx, else (reason, detail), neither holding the body."""
        data = body.encode()
        timestamp = int(self.clock())
        headers = {
            "content-type": "application/json",
            "user-agent": "payhook-outbox",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(self.key, event_id, timestamp, data),
        }
        try:
            status = self.http_post(self.url, data, headers, self.timeout_seconds)
        except Exception as exc:  # any failure to get a response is a failed attempt
            return type(exc).__name__, f"{type(exc).__name__}: {exc}"[:200]
        return None if 200 <= status < 300 else (f"HTTP {status}", f"HTTP {status}")

    def _mark_delivered(self, event_id: str) -> None:
        with Transaction(self.conn) as conn:
            conn.execute(
                "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL"
                " WHERE event_id = ?",
                (self.clock(), event_id),
            )
        log.info("event forwarded", extra={"event_id": event_id})

    def _mark_failed(self, event_id: str, attempts: int, reason: str, error: str) -> bool:
        """Record a failed attempt; returns True when that was the last one."""
        now = self.clock()
        gave_up = attempts >= self.max_attempts
        if gave_up:
            error = f"gave up after {attempts} attempts: {error}"
        with Transaction(self.conn) as conn:
            conn.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                " WHERE event_id = ?",
                (attempts, now if gave_up else now + self.backoff(attempts), error, event_id),
            )
        log.warning(
            "event forwarding failed",
            extra={
                "event_id": event_id,
                "attempts": attempts,
                "gave_up": gave_up,
                "reason": reason,
            },
        )
        return gave_up

    def backoff(self, attempts: int) -> float:
        """Delay after the ``attempts``-th failure: doubling from the base, capped, with
        "equal jitter" (between half and all of it) so retries of many rows spread out."""
        exponent = min(attempts - 1, 62)  # beyond that the cap applies anyway
        delay = min(self.backoff_max_seconds, self.backoff_base_seconds * 2.0**exponent)
        return delay * (0.5 + 0.5 * self.jitter())
