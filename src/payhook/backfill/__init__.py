"""Backfill: read the providers' events APIs, so that events never delivered as webhooks are
stored through the same store and dedup (``payhook.service.backfill`` is the use case;
``payhook backfill`` the command; ``payhook.runtimes.reconcile`` the schedule under ``serve``;
``payhook.runtimes.aws_lambda.reconcile`` the scheduled function on AWS).

One small client per provider (``stripe``, ``paddle``, ``gocardless``, ``paypal``, ``square``) on
``JsonApi`` (httpx: Retry-After, bounded retries, credentials errors), each turning the API's
event objects into the identity the provider's signed webhook gives.
"""

from payhook.backfill.clients import API_BASES, WITHOUT_EVENTS_API, events_api, supported
from payhook.backfill.errors import (
    BackfillError,
    CredentialsError,
    NoEventsApiError,
    ProviderApiError,
    RunInProgressError,
)
from payhook.backfill.http import JsonApi, RetryPolicy
from payhook.backfill.memory import MemoryCursors
from payhook.backfill.source import Cursor, CursorStore, EventsApi, Page

__all__ = [
    "API_BASES",
    "WITHOUT_EVENTS_API",
    "BackfillError",
    "CredentialsError",
    "Cursor",
    "CursorStore",
    "EventsApi",
    "JsonApi",
    "MemoryCursors",
    "NoEventsApiError",
    "Page",
    "ProviderApiError",
    "RetryPolicy",
    "RunInProgressError",
    "events_api",
    "supported",
]
