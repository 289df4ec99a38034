"""Backfill: store a provider's events fetched from its API as if they had been delivered.

Each event goes through the same store as a webhook, under the same webhook id (derived from
the provider and the event id, as ``Ingest`` derives it), marked ``source="api"``: an event
already delivered is a duplicate and changes nothing, and a webhook that arrives later is a
duplicate of the fetched event. Processing maps it with the provider's own ``payment_events``,
so the ledger and the audit chain cannot tell the two apart. Every NEW event is a webhook that
was never received: ``on_missed`` hears of it and a warning names it.

The events were not signature-checked; they came over TLS from the provider's API, asked for
with the account's key, and their identity is the API's own event object, so they are stored
as authenticated (``verified``) with ``source`` saying how.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from payhook.backfill.errors import BackfillError, RunInProgressError
from payhook.backfill.source import Cursor, CursorStore, EventsApi
from payhook.core.clock import Clock, system_clock
from payhook.core.model import Stored, StoredWebhook, VerifiedEvent
from payhook.core.ports import WebhookStore
from payhook.errors import PayloadError, UnknownProviderError
from payhook.providers.base import Provider
from payhook.service.ingest import check_storable, stored_webhook

log = logging.getLogger("payhook.backfill")

OnMissed = Callable[[str, str], None]

#: The most pages one run reads (Stripe: 100 events a page, so a million events).
MAX_PAGES = 10_000
#: How long a run holds its provider's lease; a crashed run's lease expires after this.
LEASE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class BackfillResult:
    provider: str
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    new_event_ids: list[str] = field(default_factory=list)
    #: The run picked up where an unfinished run of the provider stopped.
    resumed: bool = False
    #: Listed events no store can hold (an id over 512 characters, say): logged, not stored.
    skipped: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "fetched": self.fetched,
            "new": self.new,
            "duplicates": self.duplicates,
            "newEventIds": self.new_event_ids,
            "resumed": self.resumed,
            "skipped": self.skipped,
        }


class Backfill:
    """Fetches a provider's events since a time and stores each one through ``store``."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        store: WebhookStore,
        cursors: CursorStore,
        *,
        clock: Clock = system_clock,
        on_missed: OnMissed | None = None,
        max_pages: int = MAX_PAGES,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.providers = providers
        self.store = store
        self.cursors = cursors
        self.clock = clock
        self.on_missed = on_missed
        self.max_pages = max_pages
        self.lease_seconds = lease_seconds

    def run(self, name: str, api: EventsApi, since: float) -> BackfillResult:
        """Fetch and store every event since ``since`` (unix seconds); resumes an unfinished
        run of the provider that asked for the same or an earlier time. RunInProgressError
        when another run holds the provider's lease."""
        provider = self.providers.get(name)
        if provider is None:
            raise UnknownProviderError(f"no provider named {name!r} is configured")
        owner = uuid.uuid4().hex
        if not self.cursors.acquire(name, owner, self.clock(), self.lease_seconds):
            raise RunInProgressError(f"{name}: another backfill or reconciliation is running")
        try:
            return self._run(provider, api, since)
        finally:
            self.cursors.release(name, owner)

    def _run(self, provider: Provider, api: EventsApi, since: float) -> BackfillResult:
        name = provider.name
        saved = self.cursors.load(name)
        page_cursor: str | None = None
        resumed = False
        if saved.page_cursor and saved.since is not None and saved.since <= since:
            since, page_cursor, resumed = saved.since, saved.page_cursor, True
        high_water = saved.high_water
        fetched = duplicates = skipped = 0
        new_ids: list[str] = []
        for _ in range(self.max_pages):
            page = api.page(since, page_cursor)
            now = self.clock()
            fetched += len(page.events)
            rows = [row for event in page.events if (row := self._row(provider, event, now))]
            skipped += len(page.events) - len(rows)
            results = self.store.store(rows) if rows else []
            for row, result in zip(rows, results, strict=True):
                if row.occurred_at is not None:
                    high_water = max(high_water or row.occurred_at, row.occurred_at)
                if result is Stored.DUPLICATE:
                    duplicates += 1
                    continue
                new_ids.append(row.event_id)
                self._missed(row)
            if page.next_cursor is None:
                break
            page_cursor = page.next_cursor
            self.cursors.save(Cursor(name, since, page_cursor, high_water), now)
        else:
            raise BackfillError(f"{name}: more than {self.max_pages} pages of events; resume it")
        self.cursors.save(Cursor(name, None, None, high_water), self.clock())
        return BackfillResult(name, fetched, len(new_ids), duplicates, new_ids, resumed, skipped)

    def _row(self, provider: Provider, event: VerifiedEvent, now: float) -> StoredWebhook | None:
        """The row to store, or None for an event no store can hold (logged and skipped: one
        such event must not stop every later run at the same page)."""
        try:
            check_storable(event)
        except PayloadError as exc:
            log.error(
                "unusable event from the events API: skipped",
                extra={"provider": provider.name, "reason": str(exc)},
            )
            return None
        return stored_webhook(provider, event, now, source="api")

    def _missed(self, row: StoredWebhook) -> None:
        log.warning(
            "missed event: found only through the provider's events API",
            extra={
                "provider": row.provider,
                "event_id": row.event_id,
                "event_type": row.event_type,
                "webhook_id": row.webhook_id,
            },
        )
        if self.on_missed is not None:
            try:
                self.on_missed(row.provider, row.event_id)
            except Exception:  # a metric must never fail the run
                log.exception("on_missed failed", extra={"provider": row.provider})


def reconcile_since(cursor: Cursor, now: float, window_seconds: float, overlap: float) -> float:
    """Where a scheduled run starts: the newest event seen less the overlap (events can
    appear in the API a little after their time), at most ``window_seconds`` back."""
    start = now - window_seconds
    if cursor.high_water is None:
        return start
    return max(start, cursor.high_water - overlap)
