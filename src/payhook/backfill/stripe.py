"""Stripe: ``GET /v1/events`` (events of the last 30 days, newest first).

Filters ``created[gte]`` (unix seconds) and ``limit`` (1..100); the next page is
``starting_after=<id of the last event of this page>`` while ``has_more`` is true. The answer is
``{"object": "list", "url": "/v1/events", "has_more": bool, "data": [event, ...]}`` and each
event is the very object a webhook delivers (``id``, ``type``, ``created``, ``data.object``),
so its identity and mapping are the webhook's. Authentication: ``Authorization: Bearer
<secret or restricted key>`` (a restricted key needs read access to events only).
"""

from __future__ import annotations

from typing import Any

from payhook.backfill.http import JsonApi
from payhook.backfill.source import Page, api_event, listed
from payhook.core.model import VerifiedEvent
from payhook.providers.stripe import StripeProvider

DEFAULT_API_BASE = "https://api.stripe.com"
PAGE_SIZE = 100


class StripeEvents:
    def __init__(self, api: JsonApi, api_key: str) -> None:
        self.provider = api.provider
        self.api = api
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def page(self, since: float, cursor: str | None) -> Page:
        params: dict[str, Any] = {"created[gte]": int(since), "limit": PAGE_SIZE}
        if cursor:
            params["starting_after"] = cursor
        answer = self.api.call("GET", "/v1/events", headers=self.headers, params=params)
        data = listed(answer, "data", "/v1/events", self.provider)
        events = [stripe_event(item, self.provider) for item in data]
        more = answer.get("has_more") is True and bool(events)
        return Page(events, events[-1].event_id if more else None)

    def close(self) -> None:
        self.api.close()


def stripe_event(item: object, provider: str = "stripe") -> VerifiedEvent:
    """An event object of the API as its webhook identifies it (``StripeProvider.events``:
    ``id``, ``type``, ``created``)."""
    return api_event(provider, item, StripeProvider.event_fields.read)
