"""GoCardless: ``GET /events`` (newest first).

Filters ``created_at[gte]`` (ISO 8601) and ``limit`` (at most 500); the next page is
``after=<meta.cursors.after>`` while that is not null. The answer is ``{"events": [...],
"meta": {"cursors": {"before", "after"}, "limit"}}``; each event is the object a webhook batch
carries (``id``, ``resource_type``, ``action``, ``links``, ``created_at``), stored as the same
canonical JSON. ``Authorization: Bearer <access token>``, ``GoCardless-Version: 2015-07-06``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from payhook.backfill.http import JsonApi
from payhook.backfill.source import Page, api_event, listed
from payhook.core.model import VerifiedEvent
from payhook.errors import PayloadError
from payhook.providers.base import canonical_json, dig, iso_timestamp, require_str

PAGE_SIZE = 500
API_VERSION = "2015-07-06"


class GoCardlessEvents:
    def __init__(self, api: JsonApi, api_key: str) -> None:
        self.provider = api.provider
        self.api = api
        self.headers = {"Authorization": f"Bearer {api_key}", "GoCardless-Version": API_VERSION}

    def page(self, since: float, cursor: str | None) -> Page:
        start = datetime.fromtimestamp(since, UTC).isoformat(timespec="milliseconds")
        params: dict[str, Any] = {
            "created_at[gte]": start.replace("+00:00", "Z"),
            "limit": PAGE_SIZE,
        }
        if cursor:
            params["after"] = cursor
        answer = self.api.call("GET", "/events", headers=self.headers, params=params)
        data = listed(answer, "events", "/events", self.provider)
        after = dig(answer, "meta", "cursors", "after")
        events = [gocardless_event(item, self.provider) for item in data]
        return Page(events, after if isinstance(after, str) and after and events else None)

    def close(self) -> None:
        self.api.close()


def gocardless_event(item: object, provider: str = "gocardless") -> VerifiedEvent:
    """As ``GoCardlessProvider.events``: ``id``, ``resource_type.action``, ``created_at``, the
    event's canonical JSON as its payload."""

    # as providers/gocardless.py stores each event of a batch: canonical JSON
    return api_event(provider, item, _read, canonical_json)


def _read(event: dict[str, Any]) -> tuple[str, str, float | None]:
    resource, action = event.get("resource_type"), event.get("action")
    if not (isinstance(resource, str) and isinstance(action, str) and resource and action):
        raise PayloadError("body.resource_type or body.action is missing or not a string")
    return require_str(event, "id"), f"{resource}.{action}", iso_timestamp(event.get("created_at"))
