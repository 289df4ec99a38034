"""What a provider's signed JSON says: where its event id, type and time are, its ids as text,
and the payment event it maps to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from payhook.core.model import StoredWebhook, VerifiedEvent
from payhook.core.money import minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.providers.base import iso_timestamp, parse_json_object, require_str, unix_time


@dataclass(frozen=True, slots=True)
class EventFields:
    """Where a provider's JSON event states its id, type and time (the first key of ``time``
    that the event has). ``time_format``: ``unix`` seconds; ``iso`` 8601, a time without an
    offset read as UTC; ``iso_with_offset``, a time without one is no time."""

    id: str = "id"
    type: str = "type"
    time: tuple[str, ...] = ()
    time_format: Literal["unix", "iso", "iso_with_offset"] = "iso"

    def event(self, body: bytes) -> VerifiedEvent:
        """The one event of an authentic JSON body, stored as it was sent."""
        event_id, kind, occurred = self.read(parse_json_object(body))
        return VerifiedEvent(event_id, kind, body, occurred)

    def read(self, data: dict[str, Any]) -> tuple[str, str, float | None]:
        """The id, type and time of a JSON event (PayloadError naming what is missing); the
        events APIs' objects read the same (``backfill.source.api_event``)."""
        when = next((data[key] for key in self.time if key in data), None)
        if self.time_format == "unix":
            occurred = unix_time(when)
        else:
            occurred = iso_timestamp(when, naive_as_utc=self.time_format == "iso")
        return require_str(data, self.id), require_str(data, self.type), occurred


def json_id(value: object) -> str | None:
    """A JSON id as text: a non-empty string, or an integer (not a bool) in decimal."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


#: The kinds of a dispute's events (they carry its dispute id).
DISPUTE_KINDS = frozenset(
    {PaymentEventKind.DISPUTE_OPENED, PaymentEventKind.DISPUTE_WON, PaymentEventKind.DISPUTE_LOST}
)


def payment_event(
    webhook: StoredWebhook,
    payment_id: str,
    kind: PaymentEventKind,
    *,
    amount: object = None,
    currency: object = None,
    **fields: Any,
) -> list[PaymentEvent]:
    """The one payment event of ``webhook``, with ``amount`` (minor units) and ``currency``
    where the event states them."""
    return [
        PaymentEvent.of(
            webhook,
            payment_id=payment_id,
            kind=kind,
            amount=minor_amount(amount) if amount is not None else None,
            currency=normalize_currency(currency) if currency else None,
            **fields,
        )
    ]
