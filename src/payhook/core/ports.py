"""Ports: what the use cases need from a backend. SQLite and AWS implement them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: the receiver Lambda should not import the ledger
    from payhook.core.audit import AuditEntry
    from payhook.core.ledger import PaymentRecord
    from payhook.core.model import Stored, StoredWebhook


class WebhookStore(Protocol):
    def store(self, webhooks: Sequence[StoredWebhook]) -> Sequence[Stored]:
        """Durably store every webhook not already stored AND schedule its processing.

        Returns, per webhook, what storing it did (new, duplicate, or new but conflicting
        with another delivery's unsigned event id). Raises StorageUnavailableError when that
        cannot be guaranteed (then the caller must not acknowledge), PayloadError when a
        webhook can never be stored.
        """
        ...


@dataclass(frozen=True, slots=True)
class PaymentWrite:
    record: PaymentRecord
    expected_version: int  # 0: the payment must not exist yet


@dataclass(frozen=True, slots=True)
class ProcessingCommit:
    """Everything one processed webhook changes, committed all-or-nothing."""

    webhook_id: str
    processed_at: float
    payments: Sequence[PaymentWrite] = ()
    published: Sequence[dict[str, Any]] = field(default_factory=tuple)


class ProcessingStore(Protocol):
    def get_webhook(self, webhook_id: str) -> StoredWebhook | None: ...

    def get_payment(self, provider: str, payment_id: str) -> PaymentRecord | None: ...

    def commit(self, commit: ProcessingCommit) -> bool:
        """Mark the webhook processed, write the payments and publish the events atomically.

        Returns False (and changes nothing) when the webhook is no longer ``received``.
        Raises ConcurrencyError when a payment's version moved meanwhile.
        """
        ...


class AuditLog(Protocol):
    def head(self) -> AuditEntry | None: ...

    def append(self, entries: Sequence[AuditEntry], expected_head: AuditEntry | None) -> None:
        """Append atomically; fails if the head moved (another writer appended)."""
        ...

    def entries(self) -> Iterator[AuditEntry]: ...

    def recorded_head(self) -> tuple[int, str] | None: ...
