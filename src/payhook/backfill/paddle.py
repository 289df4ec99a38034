"""Paddle Billing: ``GET /events`` (the event entities: ``event_id``, ``event_type``,
``occurred_at``, ``data``; the same fields a notification carries).

Cursor pagination: ``after=<Paddle ID>``, ``per_page`` (at most 200), ``order_by=id[DESC]``
(newest first: Paddle IDs sort by time); the answer is ``{"data": [...], "meta":
{"pagination": {"per_page", "next", "has_more", "estimated_total"}}}`` and ``next`` is the URL
of the next page, whose ``after`` is the cursor kept. The list has no time filter, so a run
stops at the first event older than ``since``. ``Authorization: Bearer <API key>`` (a key
with the event read permission); ``Paddle-Version: 1``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from payhook.backfill.errors import ProviderApiError
from payhook.backfill.http import JsonApi
from payhook.backfill.source import Page, api_event, listed
from payhook.core.model import VerifiedEvent
from payhook.providers.base import dig
from payhook.providers.paddle import PaddleProvider

PAGE_SIZE = 200


class PaddleEvents:
    def __init__(self, api: JsonApi, api_key: str) -> None:
        self.provider = api.provider
        self.api = api
        self.headers = {"Authorization": f"Bearer {api_key}", "Paddle-Version": "1"}

    def page(self, since: float, cursor: str | None) -> Page:
        params: dict[str, Any] = {"per_page": PAGE_SIZE, "order_by": "id[DESC]"}
        if cursor:
            params["after"] = cursor
        answer = self.api.call("GET", "/events", headers=self.headers, params=params)
        data = listed(answer, "data", "/events", self.provider)
        events = [paddle_event(item, self.provider) for item in data]
        kept = [e for e in events if e.occurred_at is None or e.occurred_at >= since]
        if len(kept) < len(events) or dig(answer, "meta", "pagination", "has_more") is not True:
            return Page(kept, None)  # reached events older than since, or the last page
        return Page(kept, _after(dig(answer, "meta", "pagination", "next"), self.provider))

    def close(self) -> None:
        self.api.close()


def _after(next_url: object, provider: str) -> str:
    after = parse_qs(urlsplit(next_url).query).get("after") if isinstance(next_url, str) else None
    if not after or not after[-1]:
        raise ProviderApiError(f"{provider}: has_more without a next URL holding after=")
    return after[-1]


def paddle_event(item: object, provider: str = "paddle") -> VerifiedEvent:
    """As ``PaddleProvider.events``: ``event_id``, ``event_type``, ``occurred_at``."""
    return api_event(provider, item, PaddleProvider.event_fields.read)
