"""The ports of a run: a provider's events client (pages of events since a time) and the
store of its cursors."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from payhook.backfill.errors import ProviderApiError
from payhook.core.model import VerifiedEvent
from payhook.errors import PayloadError


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the provider's events; ``next_cursor`` None when it was the last."""

    events: list[VerifiedEvent] = field(default_factory=list)
    next_cursor: str | None = None


class EventsApi(Protocol):
    """A provider's events API, read page by page.

    ``page(since, None)`` is the first page of the events created at or after ``since`` (unix
    seconds); ``page(since, cursor)`` the one after ``cursor`` (what the previous page gave).
    Each event carries the identity its signed webhook would give: the same event id (so the
    same dedup key), type, time and the event object as its payload.
    """

    provider: str

    def page(self, since: float, cursor: str | None) -> Page: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Cursor:
    provider: str
    since: float | None = None
    page_cursor: str | None = None
    high_water: float | None = None


class CursorStore(Protocol):
    def acquire(self, provider: str, owner: str, now: float, lease_seconds: float) -> bool: ...

    def release(self, provider: str, owner: str) -> None: ...

    def load(self, provider: str) -> Cursor: ...

    def save(self, cursor: Cursor, now: float) -> None: ...


def listed(
    answer: dict[str, Any], key: str, path: str, provider: str, *, missing: list[Any] | None = None
) -> list[Any]:
    """The list of events at ``answer[key]`` (``missing`` when the key is absent and the API
    leaves it out of an empty page), or ProviderApiError naming the endpoint."""
    data = answer.get(key, missing)
    if not isinstance(data, list):
        raise ProviderApiError(f"{provider}: {path} answered without a {key} list")
    return data


def api_event(
    provider: str,
    item: object,
    read: Callable[[dict[str, Any]], tuple[str, str, float | None]],
    payload: Callable[[dict[str, Any]], bytes] | None = None,
) -> VerifiedEvent:
    """One event object of an API, identified as its signed webhook identifies it: ``read``
    gives its id, type and time (the provider's ``EventFields.read``); its payload is the
    object's JSON (``payload`` when the provider's webhook stores another encoding)."""
    if not isinstance(item, dict):
        raise ProviderApiError(f"{provider}: an event is not an object")
    try:
        event_id, kind, occurred = read(item)
    except PayloadError as exc:
        raise ProviderApiError(f"{provider}: an event of the events API: {exc}") from None
    body = payload(item) if payload else json.dumps(item, separators=(",", ":")).encode()
    return VerifiedEvent(event_id, kind, body, occurred)
