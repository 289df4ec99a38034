"""What an operator asks of stored webhooks and payments (the CLI and the console), as data:
filters, a page size and an opaque cursor. Every backend answers the same questions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WebhookQuery:
    """Webhooks newest first, each filter optional; ``cursor`` continues a previous page."""

    status: str | None = None
    provider: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    since: float | None = None  # received at or after (unix seconds)
    until: float | None = None  # received before
    limit: int = 50
    cursor: str | None = None
    #: False: the page's ``total`` is not counted (0); for a caller that knows it already.
    count: bool = True


@dataclass(frozen=True, slots=True)
class PaymentQuery:
    """Payments most recently updated first."""

    status: str | None = None
    provider: str | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of answers: ``total`` match the filters, ``cursor`` fetches the next page
    (None on the last one)."""

    items: Sequence[T]
    total: int
    cursor: str | None
