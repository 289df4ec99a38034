"""PayPal: ``GET /v1/notifications/webhooks-events`` with an OAuth token.

The token comes from ``POST /v1/oauth2/token`` (HTTP basic auth with the REST app's client id
and secret, form ``grant_type=client_credentials``; the answer holds ``access_token`` and
``expires_in``). The list takes ``page_size``, ``start_time`` and ``end_time`` (RFC 3339) and
answers ``{"events": [...], "count", "links": [{"href", "rel", "method"}]}``; the next page is
the ``href`` of the link whose ``rel`` is ``next``, kept as the cursor (followed only on the
configured API host: it carries the token). Each event is the webhook's own object (``id``,
``event_type``, ``create_time``, ``resource``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from payhook.backfill.errors import CredentialsError, ProviderApiError
from payhook.backfill.http import JsonApi
from payhook.backfill.source import Page, api_event, listed
from payhook.core.model import VerifiedEvent
from payhook.providers.paypal import EVENT_FIELDS

PAGE_SIZE = 100
EVENTS_PATH = "/v1/notifications/webhooks-events"


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PayPalEvents:
    def __init__(self, api: JsonApi, client_id: str, client_secret: str) -> None:
        self.provider = api.provider
        self.api = api
        self.credentials = (client_id, client_secret)
        self.token: tuple[str, float] | None = None  # (token, expires at, monotonic)
        self.end_time = rfc3339(time.time())  # one window for the whole run

    def _headers(self) -> dict[str, str]:
        now = time.monotonic()
        if self.token is None or self.token[1] <= now:
            answer = self.api.call(
                "POST",
                "/v1/oauth2/token",
                headers={"Accept": "application/json"},
                data={"grant_type": "client_credentials"},
                auth=self.credentials,
            )
            token, expires = answer.get("access_token"), answer.get("expires_in", 0)
            if not isinstance(token, str) or not token:
                raise CredentialsError(f"{self.provider}: /v1/oauth2/token gave no access_token")
            lifetime = float(expires) if isinstance(expires, int | float) else 0.0
            self.token = (token, now + max(lifetime - 60, 0))
        return {"Authorization": f"Bearer {self.token[0]}", "Accept": "application/json"}

    def page(self, since: float, cursor: str | None) -> Page:
        params: dict[str, Any] | None = None
        path = cursor
        if path is None:
            path = EVENTS_PATH
            params = {
                "page_size": PAGE_SIZE,
                "start_time": rfc3339(since),
                "end_time": self.end_time,
            }
        elif urlsplit(path).netloc != urlsplit(self.api.base_url).netloc:
            raise ProviderApiError(f"{self.provider}: a next link leaves the API host")
        answer = self.api.call("GET", path, headers=self._headers(), params=params)
        data = listed(answer, "events", EVENTS_PATH, self.provider)
        events = [paypal_event(item, self.provider) for item in data]
        links = answer.get("links") if isinstance(answer.get("links"), list) else []
        following = [
            link.get("href")
            for link in links or []
            if isinstance(link, dict) and link.get("rel") == "next"
        ]
        href = following[0] if following and isinstance(following[0], str) else None
        return Page(events, href if events else None)

    def close(self) -> None:
        self.api.close()


def paypal_event(item: object, provider: str = "paypal") -> VerifiedEvent:
    """As ``PayPalProvider.verify``: ``id``, ``event_type``, ``create_time``."""
    return api_event(provider, item, EVENT_FIELDS.read)
