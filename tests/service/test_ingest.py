"""The delivery flow: identity only from signed data, and one bad event never fails another.

Driven through ``Ingest.receive`` into the real group-commit writer over SQLite.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from payhook.backends.sqlite import GroupCommitWriter, initialize
from payhook.core.model import WebhookRequest
from payhook.providers import build_providers, load_provider_config
from payhook.providers.base import ProviderResponse
from payhook.providers.shopify import shopify_signature
from payhook.providers.stripe import sample_event, stripe_signature
from payhook.service.ingest import Ingest
from tests.conftest import FakeClock, load_sample

SHOPIFY_SECRET = "shpss_ingest_tests_0123456789"
RAZORPAY_SECRET = "rzp_ingest_tests_secret"
STRIPE_SECRET = "whsec_ingest_tests_secret"
GENERIC_SECRET = "acme_ingest_tests_secret"


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[GroupCommitWriter]:
    path = tmp_path / "payhook.db"
    initialize(path)
    w = GroupCommitWriter(path)
    w.start()
    yield w
    w.stop()


@pytest.fixture
def ingest(clock: FakeClock) -> Ingest:
    sections = {
        "shop": {"type": "shopify", "secrets": [SHOPIFY_SECRET]},
        "razorpay": {"secrets": [RAZORPAY_SECRET]},
        "stripe": {"secrets": [STRIPE_SECRET]},
        "acme": {
            "type": "generic",
            "secrets": [GENERIC_SECRET],
            "signature_header": "X-Acme-Signature",
            "event_id_header": "X-Acme-Delivery",
            "event_type_header": "X-Acme-Event",
            "unsigned_identity": True,
            "payment_id_path": "payment",
            "amount_path": "amount",
            "kinds": {"payment.refunded": "refunded", "payment.failed": "failed"},
        },
    }
    configs = {name: load_provider_config(name, section) for name, section in sections.items()}
    return Ingest(build_providers(configs, clock), clock)


def rows(writer: GroupCommitWriter, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(writer.path)
    try:
        return list(conn.execute(query))
    finally:
        conn.close()


def events(answer: ProviderResponse) -> list[dict[str, object]]:
    assert answer.status == 200, answer.body
    return list(json.loads(answer.body)["events"])


def shopify(body: bytes, webhook_id: str, topic: str = "orders/paid") -> WebhookRequest:
    return WebhookRequest(
        body,
        {
            "x-shopify-hmac-sha256": shopify_signature(SHOPIFY_SECRET, body),
            "x-shopify-topic": topic,
            "x-shopify-webhook-id": webhook_id,
        },
    )


def razorpay(body: bytes, event_id: str) -> WebhookRequest:
    signature = hmac.new(RAZORPAY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return WebhookRequest(
        body, {"x-razorpay-signature": signature, "x-razorpay-event-id": event_id}
    )


# -- identity: a captured body re-sent under a fresh id is a duplicate ----------------------


def test_a_shopify_body_replayed_under_fresh_ids_is_a_duplicate_and_stores_nothing(
    ingest: Ingest, writer: GroupCommitWriter
) -> None:
    body = load_sample("shopify", "orders-paid")
    [first] = events(ingest.receive("shop", shopify(body, "genuine-1"), writer))
    assert first["duplicate"] is False
    for n in range(20):
        [again] = events(ingest.receive("shop", shopify(body, f"replayed-{n}"), writer))
        assert again["duplicate"] is True
        assert again["webhookId"] == first["webhookId"]
    assert rows(writer, "SELECT count(*) FROM webhooks") == [(1,)]


def test_a_captured_shopify_body_sent_under_a_genuine_id_never_loses_the_genuine_one(
    ingest: Ingest, writer: GroupCommitWriter, caplog: pytest.LogCaptureFixture
) -> None:
    captured = load_sample("shopify", "orders-paid")
    genuine = load_sample("shopify", "refunds-create")
    # The attacker is first, under the id the genuine delivery will carry.
    [forged] = events(ingest.receive("shop", shopify(captured, "X2"), writer))
    with caplog.at_level(logging.WARNING, logger="payhook.ingest"):
        [real] = events(
            ingest.receive("shop", shopify(genuine, "X2", topic="refunds/create"), writer)
        )
    assert (forged["duplicate"], real["duplicate"]) == (False, False)
    assert real["webhookId"] != forged["webhookId"]
    stored = rows(
        writer, "SELECT event_id, event_type, id_signed, conflict FROM webhooks ORDER BY rowid"
    )
    assert stored == [("X2", "orders/paid", 0, 0), ("X2", "refunds/create", 0, 1)]
    assert rows(writer, "SELECT count(*) FROM queue") == [(2,)]  # both are processed
    [warning] = [r for r in caplog.records if "conflicting delivery" in r.message]
    assert warning.webhook_id == real["webhookId"]  # type: ignore[attr-defined]


def test_one_shopify_body_under_two_topics_is_two_events(
    ingest: Ingest, writer: GroupCommitWriter
) -> None:
    body = load_sample("shopify", "orders-paid")
    [created] = events(ingest.receive("shop", shopify(body, "a", "orders/create"), writer))
    [updated] = events(ingest.receive("shop", shopify(body, "b", "orders/updated"), writer))
    assert (created["duplicate"], updated["duplicate"]) == (False, False)
    assert rows(writer, "SELECT count(*) FROM webhooks") == [(2,)]


def test_a_razorpay_body_replayed_under_a_fresh_id_is_a_duplicate_and_a_borrowed_id_a_conflict(
    ingest: Ingest, writer: GroupCommitWriter
) -> None:
    body = load_sample("razorpay", "payment.captured")
    other = load_sample("razorpay", "refund.processed")
    [first] = events(ingest.receive("razorpay", razorpay(body, "EvtAAAAAAAAAAA"), writer))
    [replay] = events(ingest.receive("razorpay", razorpay(body, "EvtBBBBBBBBBBB"), writer))
    [borrowed] = events(ingest.receive("razorpay", razorpay(other, "EvtAAAAAAAAAAA"), writer))
    assert (first["duplicate"], replay["duplicate"], borrowed["duplicate"]) == (
        False,
        True,
        False,
    )
    assert rows(writer, "SELECT conflict FROM webhooks ORDER BY rowid") == [(0,), (1,)]


def test_a_generic_refund_replayed_under_new_delivery_ids_is_counted_once(
    ingest: Ingest, writer: GroupCommitWriter
) -> None:
    from payhook.providers.generic import GenericHmacProvider

    provider = ingest.providers["acme"]
    assert isinstance(provider, GenericHmacProvider)
    body = b'{"payment":"pay_1","amount":400}'
    signature = provider.engine.sign(body)["x-acme-signature"]

    def delivery(delivery_id: str, event: str) -> WebhookRequest:
        headers = {
            "x-acme-signature": signature,
            "x-acme-delivery": delivery_id,
            "x-acme-event": event,
        }
        return WebhookRequest(body, headers)

    [first] = events(ingest.receive("acme", delivery("d1", "payment.refunded"), writer))
    replays = [
        events(ingest.receive("acme", delivery(f"d{n}", "payment.refunded"), writer))[0]
        for n in range(2, 6)
    ]
    assert first["duplicate"] is False
    assert all(r["duplicate"] for r in replays)
    assert rows(writer, "SELECT count(*) FROM webhooks") == [(1,)]


def test_a_generic_provider_refuses_an_unsigned_id_header_unless_opted_in() -> None:
    from payhook.errors import ConfigError

    section = {
        "type": "generic",
        "secrets": [GENERIC_SECRET],
        "signature_header": "X-Acme-Signature",
        "event_id_header": "X-Acme-Delivery",
    }
    with pytest.raises(ConfigError, match="event_id_header: got a header that signed_content"):
        build_providers({"acme": load_provider_config("acme", section)})
    signed = {**section, "signed_content": "{header:X-Acme-Delivery}.{body}"}
    assert build_providers({"acme": load_provider_config("acme", signed)})


# -- one bad event never fails another -----------------------------------------------------


def stripe(event: dict[str, object], now: int) -> WebhookRequest:
    body = json.dumps(event).encode()
    signature = stripe_signature(STRIPE_SECRET, now, body)
    return WebhookRequest(body, {"stripe-signature": f"t={now},v1={signature}"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "evt_\ud800"),  # a lone surrogate: valid JSON, not storable text
        ("type", "payment_intent.\udfff"),
        ("id", "evt_" + "x" * 600),
    ],
)
def test_a_signed_event_that_can_never_be_stored_gets_400_and_stores_nothing(
    ingest: Ingest, writer: GroupCommitWriter, clock: FakeClock, field: str, value: object
) -> None:
    now = int(clock())
    event = sample_event("payment_intent.succeeded", now)
    event[field] = value
    answer = ingest.receive("stripe", stripe(event, now), writer)
    assert answer.status == 400
    assert json.loads(answer.body)["error"] == "invalid_payload"
    assert rows(writer, "SELECT count(*) FROM webhooks") == [(0,)]


def test_a_signed_event_with_a_huge_time_is_stored_without_a_time(
    ingest: Ingest, writer: GroupCommitWriter, clock: FakeClock
) -> None:
    # The time only orders a payment's events: one out of range is dropped, not fatal.
    now = int(clock())
    event = sample_event("payment_intent.succeeded", now)
    event["created"] = 10**400  # a signed 400-digit time (it used to be a 500)
    assert ingest.receive("stripe", stripe(event, now), writer).status == 200
    assert rows(writer, "SELECT occurred_at FROM webhooks") == [(None,)]


def test_a_conflicting_delivery_is_visible_in_the_cli(
    ingest: Ingest,
    writer: GroupCommitWriter,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from payhook.cli.main import main

    captured = load_sample("shopify", "orders-paid")
    genuine = load_sample("shopify", "refunds-create")
    ingest.receive("shop", shopify(captured, "X2"), writer)
    ingest.receive("shop", shopify(genuine, "X2", topic="refunds/create"), writer)
    config = tmp_path / "cli.toml"
    config.write_text(f'[storage]\npath = "{writer.path}"\n')
    assert main(["webhooks", "list", "--config", str(config)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[1:-1]]
    flags = {(line[2], line[-1]) for line in lines}
    assert flags == {("orders/paid", "-"), ("refunds/create", "conflict")}
