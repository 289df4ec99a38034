"""What the console's lists are filtered by, read from a request, and the selections its
actions work on: the same questions the CLI asks (``core.queries``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from payhook.backends.sqlite.outbox import FailedDelivery
from payhook.backends.sqlite.queue import DeadLetter
from payhook.backends.sqlite.reader import CursorError, SqliteReader
from payhook.console.call import Call
from payhook.core.model import StoredWebhook
from payhook.core.queries import WebhookQuery
from payhook.errors import NotFoundError

#: The time ranges offered next to the from/to fields.
RANGES = {"15m": ("last 15 minutes", 900), "1h": ("last hour", 3600), "24h": ("last day", 86400)}
RANGES["7d"] = ("last 7 days", 7 * 86400)


class FilterError(ValueError):
    """A filter the console cannot read (shown beside the form, the list left unfiltered)."""


def parse_time(text: str | None, name: str) -> float | None:
    """``2026-12-05T06:00`` (a datetime-local field, read as UTC) in unix seconds."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        raise FilterError(f"{name}: got {text!r}, expected a date and time (UTC)") from None
    return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()


@dataclass(frozen=True, slots=True)
class DeliveryFilters:
    provider: str | None = None
    status: str | None = None
    event_type: str | None = None
    range: str | None = None
    since: str | None = None
    until: str | None = None
    q: str | None = None

    @classmethod
    def read(cls, call: Call) -> DeliveryFilters:
        return cls(
            provider=call.value("provider"),
            status=call.value("status"),
            event_type=call.value("type"),
            range=call.value("range") if call.value("range") in RANGES else None,
            since=call.value("since"),
            until=call.value("until"),
            q=call.value("q"),
        )

    def query(self, now: float, *, limit: int = 50, cursor: str | None = None) -> WebhookQuery:
        since = parse_time(self.since, "from")
        if self.range is not None:
            since = max(since or 0.0, now - RANGES[self.range][1])
        q = self.q if self.q and not self.q.startswith("wh_") else None
        return WebhookQuery(
            status=self.status,
            provider=self.provider,
            event_type=self.event_type,
            event_id=q,
            since=since,
            until=parse_time(self.until, "to"),
            limit=limit,
            cursor=cursor,
        )

    def matches(self, webhook: StoredWebhook) -> bool:
        """For the live view, which reads new arrivals unfiltered."""
        if self.q and self.q not in (webhook.webhook_id, webhook.event_id):
            return False
        until = parse_time(self.until, "to")
        if until is not None and webhook.received_at >= until:
            return False
        return all(
            wanted is None or wanted == actual
            for wanted, actual in (
                (self.provider, webhook.provider),
                (self.status, str(webhook.status)),
                (self.event_type, webhook.event_type),
            )
        )

    def encoded(self) -> str:
        pairs = {
            "provider": self.provider,
            "status": self.status,
            "type": self.event_type,
            "range": self.range,
            "since": self.since,
            "until": self.until,
            "q": self.q,
        }
        return urlencode({k: v for k, v in pairs.items() if v})


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter beside the webhook it holds back (None if the row is gone)."""

    letter: DeadLetter
    webhook: StoredWebhook | None


def dead_letters(reader: SqliteReader, provider: str | None, text: str | None) -> list[Letter]:
    """Dead letters of ``provider`` whose reason contains ``text`` (each filter optional)."""
    found = []
    for letter, webhook in reader.dead_letters_with_webhooks():
        if text and text.lower() not in letter.reason.lower():
            continue
        if provider and (webhook is None or webhook.provider != provider):
            continue
        found.append(Letter(letter, webhook))
    return found


#: Dead letters on one page; filters and "redrive all matching" cover every one.
DEAD_LETTERS_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class LetterPage:
    """One page of the matching dead letters (``number`` of ``pages``, from 1)."""

    letters: list[Letter]
    matching: int  # on every page
    number: int
    pages: int

    @property
    def first(self) -> int:  # the position of its first letter among the matching, from 1
        return (self.number - 1) * DEAD_LETTERS_PER_PAGE + 1


def letter_page(letters: list[Letter], raw: str | None) -> LetterPage:
    """Page ``raw`` (the first when None) of ``letters``: a 400 (CursorError) unless it is a
    number from 1, a 404 past the last page."""
    if raw is not None and (not raw.isdigit() or int(raw) < 1):
        raise CursorError(f"page: got {raw!r}, expected a page number (1, 2, ...)")
    number = int(raw) if raw is not None else 1
    pages = max(1, -(-len(letters) // DEAD_LETTERS_PER_PAGE))
    if number > pages:
        raise NotFoundError(f"no page {number} of dead letters: there are {pages}")
    start = (number - 1) * DEAD_LETTERS_PER_PAGE
    return LetterPage(letters[start : start + DEAD_LETTERS_PER_PAGE], len(letters), number, pages)


def failed_deliveries(
    reader: SqliteReader, max_attempts: int, text: str | None
) -> list[FailedDelivery]:
    return [
        f
        for f in reader.failed_deliveries(max_attempts)
        if not text or text.lower() in (f.last_error or "").lower()
    ]
