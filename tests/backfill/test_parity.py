"""Ledger parity, per provider: an event fetched from the provider's events API (a loopback
fake in its documented shapes, several pages) is stored under the same webhook id as the
signed webhook of the same event, and maps to the same canonical payment events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from payhook.backfill.clients import events_api
from payhook.backfill.errors import CredentialsError, ProviderApiError
from payhook.backfill.gocardless import gocardless_event
from payhook.backfill.memory import MemoryCursors
from payhook.backfill.paddle import paddle_event
from payhook.backfill.paypal import paypal_event
from payhook.backfill.square import square_event
from payhook.backfill.stripe import stripe_event
from payhook.core.model import Stored, StoredWebhook, WebhookRequest
from payhook.providers import ProviderConfig, provider_class
from payhook.providers.base import Provider
from payhook.service.backfill import Backfill
from payhook.service.ingest import Ingest
from tests.backfill.fakes import (
    FakeApi,
    FakeGoCardless,
    FakePaddle,
    FakePayPal,
    FakeSquare,
    FakeStripe,
    serving,
)
from tests.conftest import FakeClock

KEY = "api_key_for_the_parity_tests_0001"
CLIENT_ID, CLIENT_SECRET = "paypal-client-id-0000001", "paypal-client-secret-000001"


class MemoryStore:
    """A ``WebhookStore`` in a dict: dedup on the webhook id, as every backend."""

    def __init__(self, rows: Sequence[StoredWebhook] = ()) -> None:
        self.rows = {w.webhook_id: w for w in rows}

    def store(self, webhooks: Sequence[StoredWebhook]) -> list[Stored]:
        results = []
        for w in webhooks:
            results.append(Stored.DUPLICATE if w.webhook_id in self.rows else Stored.NEW)
            self.rows.setdefault(w.webhook_id, w)
        return results


def check_parity(
    provider: Provider,
    config: ProviderConfig,
    deliveries: list[WebhookRequest],
    fake: Callable[[list[dict[str, Any]]], FakeApi],
    items: Callable[[bytes], list[dict[str, Any]]],
    since: float,
    clock: FakeClock | None = None,
) -> FakeApi:
    ingest = Ingest({provider.name: provider}, clock or time.time)
    delivered = [w for request in deliveries for w in ingest.verify(provider.name, request)]
    api = fake([item for request in deliveries for item in items(request.body)])
    with serving(api) as base:
        section = {**config.options, "type": config.provider_type, "api_base": base}
        if config.secrets:
            section["secrets"] = list(config.secrets)
        client = events_api(ProviderConfig.from_mapping(config.name, section))
        fetched = MemoryStore()
        result = Backfill({provider.name: provider}, fetched, MemoryCursors()).run(
            provider.name, client, since
        )
        again = Backfill({provider.name: provider}, MemoryStore(delivered), MemoryCursors())
        assert again.run(provider.name, client, since).new == 0  # delivered: all duplicates
    assert result.fetched == len(delivered)
    assert set(fetched.rows) == {w.webhook_id for w in delivered}
    mapped = 0
    for webhook in delivered:
        row = fetched.rows[webhook.webhook_id]
        assert (row.source, webhook.source) == ("api", "webhook")
        assert (row.event_id, row.event_type, row.occurred_at) == (
            webhook.event_id,
            webhook.event_type,
            webhook.occurred_at,
        )
        assert provider.payment_events(row) == provider.payment_events(webhook)
        mapped += len(provider.payment_events(webhook))
    assert mapped > 0  # the comparison covered payment events, not only empty lists
    return api


def make(name: str, section: dict[str, Any]) -> tuple[Provider, ProviderConfig]:
    config = ProviderConfig.from_mapping(name, section)
    return provider_class(config.provider_type)(config), config


def samples(provider: Provider) -> list[WebhookRequest]:
    return [provider.sample_request(kind) for kind in provider.sample_event_types]


def test_stripe_events_from_the_api_map_as_their_webhooks() -> None:
    provider, config = make("stripe", {"secrets": ["whsec_parity_tests_0123"], "api_key": KEY})
    check_parity(
        provider,
        config,
        samples(provider),
        lambda events: FakeStripe(KEY, events),
        lambda body: [json.loads(body)],
        since=time.time() - 3600,
    )


def test_paddle_events_from_the_api_map_as_their_webhooks() -> None:
    section = {"secrets": ["pdl_ntf_parity_tests_0123456"], "api_key": KEY}
    provider, config = make("paddle", section)
    api = check_parity(
        provider,
        config,
        samples(provider),
        lambda events: FakePaddle(KEY, events, page_cap=2),
        lambda body: [json.loads(body)],
        since=time.time() - 3600,
    )
    assert len(api.seen) >= 3  # pages of two, following meta.pagination.next's after


def test_paddle_stops_at_the_first_event_older_than_since() -> None:
    provider, _config = make("paddle", {"secrets": ["pdl_ntf_parity_tests_0123456"]})
    old, new = (json.loads(r.body) for r in samples(provider)[:2])
    old["occurred_at"] = "2020-01-01T00:00:00Z"
    old["event_id"], new["event_id"] = "evt_01a", "evt_01b"  # ids sort by time
    api = FakePaddle(KEY, [old, new], page_cap=1)
    with serving(api) as base:
        section = {"secrets": ["pdl_ntf_parity_tests_0123456"], "api_key": KEY, "api_base": base}
        client = events_api(ProviderConfig.from_mapping("paddle", section))
        result = Backfill({"paddle": provider}, MemoryStore(), MemoryCursors()).run(
            "paddle", client, time.time() - 3600
        )
    assert result.new_event_ids == ["evt_01b"]
    assert len(api.seen) == 2


def test_gocardless_events_from_the_api_map_as_their_webhooks() -> None:
    section = {"secrets": ["gocardless_parity_secret_01"], "api_key": KEY}
    provider, config = make("gocardless", section)
    api = check_parity(
        provider,
        config,
        samples(provider),
        lambda events: FakeGoCardless(KEY, events, page_cap=3),
        lambda body: list(json.loads(body)["events"]),
        since=time.time() - 3600,
    )
    assert len(api.seen) >= 4  # pages of three, following meta.cursors.after
    assert all("created_at[gte]" in seen.query for seen in api.seen)


def test_square_events_from_the_api_map_as_their_webhooks() -> None:
    section = {
        "secrets": ["square_parity_signature_key"],
        "notification_url": "https://payhook.example/webhooks/square",
        "api_key": KEY,
    }
    provider, config = make("square", section)
    api = check_parity(
        provider,
        config,
        samples(provider),
        lambda events: FakeSquare(KEY, events, page_cap=2),
        lambda body: [json.loads(body)],
        since=time.time() - 3600,
    )
    assert len(api.seen) >= 3
    assert all(seen.method == "POST" for seen in api.seen)


def test_paypal_events_from_the_api_map_as_their_webhooks() -> None:
    from tests.providers.paypal_pki import NOW, delivery, rsa_key
    from tests.providers.test_paypal import CAPTURE_BODY, make_provider

    options = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    provider, _ = make_provider(FakeClock(NOW), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    config = ProviderConfig.from_mapping(
        "paypal", {"type": "paypal", "webhook_id": "8PT597110X687430LM", **options}
    )
    second = json.loads(CAPTURE_BODY)
    second["id"], second["create_time"] = "WH-SECOND-EVENT-0001", "2023-11-14T22:13:18.000Z"
    deliveries = [
        delivery(CAPTURE_BODY, rsa_key(1)),
        delivery(json.dumps(second).encode(), rsa_key(1)),
    ]
    api = check_parity(
        provider,
        config,
        deliveries,
        lambda events: FakePayPal(CLIENT_ID, CLIENT_SECRET, events, page_cap=1),
        lambda body: [json.loads(body)],
        since=NOW - 3600,
        clock=FakeClock(NOW),
    )
    paths = [seen.path for seen in api.seen]
    assert paths.count("/v1/oauth2/token") == 1  # the token is reused while it is valid
    assert paths.count("/v1/notifications/webhooks-events") == 4  # two pages, twice


def test_paypal_wrong_client_credentials_are_a_clear_error() -> None:
    with serving(FakePayPal(CLIENT_ID, "another-secret-entirely-01", [])) as base:
        section = {
            "type": "paypal",
            "webhook_id": "8PT597110X687430LM",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "api_base": base,
        }
        client = events_api(ProviderConfig.from_mapping("paypal", section))
        with pytest.raises(CredentialsError, match=r"paypal: .*refused the credentials.*401"):
            client.page(time.time() - 60, None)


@pytest.mark.parametrize(
    ("read", "event", "missing"),
    [
        (stripe_event, {"type": "charge.refunded", "created": 1}, "body.id"),
        (paddle_event, {"event_id": "evt_1", "occurred_at": "2026-01-01T00:00:00Z"}, "event_type"),
        (square_event, {"type": "payment.updated"}, "body.event_id"),
        (paypal_event, {"id": "WH-1", "create_time": "2026-01-01T00:00:00Z"}, "event_type"),
        (gocardless_event, {"id": "EV1", "resource_type": "payments"}, "action"),
    ],
    ids=["stripe", "paddle", "square", "paypal", "gocardless"],
)
def test_an_api_event_without_its_identity_is_an_api_error_naming_what_is_missing(
    read: Callable[[object, str], object], event: dict[str, Any], missing: str
) -> None:
    with pytest.raises(ProviderApiError, match=rf"^acme: an event of the events API: .*{missing}"):
        read(event, "acme")
    with pytest.raises(ProviderApiError, match=r"^acme: an event is not an object$"):
        read([event], "acme")
