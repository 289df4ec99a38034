"""The backfill error tree: one root, every httpx error mapped onto it."""

from __future__ import annotations

from payhook.errors import PayhookError


class BackfillError(PayhookError):
    """A backfill or reconciliation run could not complete; its cursor keeps what it reached."""


class CredentialsError(BackfillError):
    """The provider's API refused the configured credentials (401 or 403)."""


class ProviderApiError(BackfillError):
    """The provider's API failed, or kept failing after the bounded retries."""


class RunInProgressError(BackfillError):
    """Another run for the same provider holds its lease."""


class NoEventsApiError(BackfillError):
    """The provider has no events API, or its section configures no API credentials."""
