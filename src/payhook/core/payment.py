"""The canonical payment event every provider's webhooks are turned into."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from payhook.core.model import StoredWebhook
from payhook.errors import PayloadError


class PaymentEventKind(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One fact about one payment, in provider-neutral terms.

    ``amount`` is in integer minor units and means: the payment amount for lifecycle kinds,
    the refund amount for ``refunded`` (per ``refund_id``), the disputed amount for disputes.
    ``refunded_total`` is a cumulative refunded amount when the provider states one, and
    ``captured_hint`` the captured amount a refund or dispute event reveals.
    """

    provider: str
    payment_id: str
    kind: PaymentEventKind
    event_id: str
    event_type: str
    occurred_at: float
    amount: int | None = None
    currency: str | None = None
    refund_id: str | None = None
    dispute_id: str | None = None
    refunded_total: int | None = None
    captured_hint: int | None = None

    def __post_init__(self) -> None:
        if not self.payment_id:
            raise PayloadError("payment event without a payment id")
        for name in ("amount", "refunded_total", "captured_hint"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise PayloadError(f"{name} must be integer minor units, got {value!r}")

    @classmethod
    def of(
        cls, webhook: StoredWebhook, *, payment_id: str, kind: PaymentEventKind, **fields: Any
    ) -> PaymentEvent:
        """A fact reported by ``webhook``: its provider, event id, type and event time."""
        return cls(
            provider=webhook.provider,
            payment_id=payment_id,
            kind=kind,
            event_id=webhook.event_id,
            event_type=webhook.event_type,
            occurred_at=webhook.event_time,
            **fields,
        )

    @property
    def key(self) -> str:
        """Identity of the fact: the same key twice is the same fact (a duplicate)."""
        return f"{self.event_id}|{self.kind}|{self.refund_id or self.dispute_id or ''}"

    def to_dict(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies, and this runs for every stored fact.
        data = {name: getattr(self, name) for name in _FIELDS}
        data["kind"] = str(self.kind)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaymentEvent:
        values = dict(data)
        values["kind"] = PaymentEventKind(values["kind"])
        values["occurred_at"] = float(values["occurred_at"])
        for name in ("amount", "refunded_total", "captured_hint"):
            if values.get(name) is not None:
                values[name] = int(values[name])
        return cls(**values)


_FIELDS = tuple(f.name for f in fields(PaymentEvent))
