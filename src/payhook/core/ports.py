"""Ports: what the use cases need from a backend. SQLite and AWS implement them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: the receiver Lambda should not import the ledger
    from payhook.core.audit import AuditEntry, Change
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


class BatchProcessingStore(ProcessingStore, Protocol):
    """A ``ProcessingStore`` that also reads many rows per query (the embedded workers plan a
    batch of webhooks at a time)."""

    def get_webhooks(self, webhook_ids: Sequence[str]) -> Mapping[str, StoredWebhook]:
        """The stored webhooks among ``webhook_ids``, by id (missing ones are left out)."""
        ...

    def get_payments(
        self, keys: Iterable[tuple[str, str]]
    ) -> Mapping[tuple[str, str], PaymentRecord]:
        """The payments among ``keys`` (provider, payment id) that exist, by key."""
        ...


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """A received message: its webhook is invisible to other receivers until it is deleted or
    its visibility timeout ends."""

    message_id: int
    webhook_id: str
    receive_count: int


@dataclass(frozen=True, slots=True)
class Failure:
    """A message that could not be processed: record ``error`` on its webhook and make it
    visible again in ``retry_in`` seconds."""

    message: QueueMessage
    error: str
    retry_in: float


@dataclass(frozen=True, slots=True)
class Completion:
    """What ``ProcessingQueue.complete`` did: per commit its result (as ``commit``) or the
    exception it raised, and the messages received after it."""

    outcomes: list[bool | Exception]
    received: list[QueueMessage]


class ProcessingQueue(Protocol):
    """The embedded processing queue (SQS semantics) with one write per batch."""

    def receive(self, max_messages: int) -> list[QueueMessage]: ...

    def complete(
        self,
        commits: Sequence[tuple[QueueMessage, ProcessingCommit]],
        done: Sequence[QueueMessage],
        failures: Sequence[Failure],
        receive: int,
    ) -> Completion:
        """In ONE write: apply each commit all-or-nothing (an exception undoes only its own;
        a commit that returns False leaves the webhook as it is) and delete its message unless
        it raised; delete the ``done`` messages; record each failure and schedule its retry;
        then receive up to ``receive`` messages. StorageUnavailableError when nothing of it
        could be written."""
        ...


class ChangeFeed(Protocol):
    """Changes of webhooks and payments waiting to be chained into the audit log, oldest
    first (on SQLite, rows its triggers write in the same transactions as the changes)."""

    def head(self) -> AuditEntry | None:
        """The audit log's last entry."""
        ...

    def pending(self, limit: int) -> Sequence[Change]:
        """Up to ``limit`` of the oldest changes not chained yet, each with its ``source_id``."""
        ...

    def chain(
        self,
        changes: Sequence[Change],
        entries: Sequence[AuditEntry],
        expected_head: AuditEntry | None,
    ) -> None:
        """Append ``entries`` (one per change, in order) to the audit log and consume
        ``changes`` from the feed, atomically; ConcurrencyError if the head moved."""
        ...


class AuditLog(Protocol):
    def head(self) -> AuditEntry | None: ...

    def append(self, entries: Sequence[AuditEntry], expected_head: AuditEntry | None) -> None:
        """Append atomically; fails if the head moved (another writer appended)."""
        ...

    def entries(self) -> Iterator[AuditEntry]: ...

    def recorded_head(self) -> tuple[int, str] | None: ...
