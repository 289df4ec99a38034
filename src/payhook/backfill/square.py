"""Square: ``POST /v2/events`` (SearchEvents, events of the last 28 days).

The body is ``{"limit": <=100, "query": {"filter": {"created_at": {"start_at": RFC 3339}}},
"cursor"}``; the answer ``{"events": [...], "metadata": [...], "cursor"}``, the cursor absent
or empty on the last page (a cursor lives 5 minutes, so a run resumed later starts again,
which dedup makes harmless). Each event is the webhook's own object (``event_id``, ``type``,
``created_at``, ``data``). ``Authorization: Bearer <personal access token>``: the Events API
refuses OAuth tokens.
"""

from __future__ import annotations

from typing import Any

from payhook.backfill.http import JsonApi
from payhook.backfill.paypal import rfc3339
from payhook.backfill.source import Page, api_event, listed
from payhook.core.model import VerifiedEvent
from payhook.providers.square import SquareProvider

PAGE_SIZE = 100


class SquareEvents:
    def __init__(self, api: JsonApi, api_key: str) -> None:
        self.provider = api.provider
        self.api = api
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def page(self, since: float, cursor: str | None) -> Page:
        body: dict[str, Any] = {
            "limit": PAGE_SIZE,
            "query": {"filter": {"created_at": {"start_at": rfc3339(since)}}},
        }
        if cursor:
            body["cursor"] = cursor
        answer = self.api.call("POST", "/v2/events", headers=self.headers, json=body)
        data = listed(answer, "events", "/v2/events", self.provider, missing=[])
        events = [square_event(item, self.provider) for item in data]
        following = answer.get("cursor")
        return Page(events, following if isinstance(following, str) and following else None)

    def close(self) -> None:
        self.api.close()


def square_event(item: object, provider: str = "square") -> VerifiedEvent:
    """As ``SquareProvider.verify``: ``event_id``, ``type``, ``created_at`` (with an offset)."""
    return api_event(provider, item, SquareProvider.event_fields.read)
