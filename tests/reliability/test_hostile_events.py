"""Hostile but validly signed events against the real server: one event payhook can never
store fails alone with a 400, never its neighbours, never a 5xx; a captured body replayed
under fresh ids stores nothing more."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from payhook.core.model import WebhookRequest
from payhook.providers.shopify import shopify_signature
from payhook.providers.stripe import sample_event, stripe_signature
from tests.conftest import load_sample
from tests.reliability import fleet
from tests.reliability.server import ReliabilityServer

pytestmark = pytest.mark.e2e

STRIPE_SECRET = fleet.SECTIONS["stripe"]["secrets"][0]
SHOPIFY_SECRET = fleet.SECTIONS["shopify"]["secrets"][0]


def stripe(event: dict[str, object]) -> WebhookRequest:
    now = int(time.time())
    body = json.dumps(event).encode()
    signature = stripe_signature(STRIPE_SECRET, now, body)
    return WebhookRequest(
        body, {"content-type": "application/json", "stripe-signature": f"t={now},v1={signature}"}
    )


async def _post_all(url: str, requests: list[WebhookRequest]) -> list[int]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post(url, content=r.body, headers=r.headers) for r in requests)
        )
    return [a.status_code for a in answers]


def test_unstorable_signed_events_fail_alone_among_200_concurrent_deliveries(
    tmp_path: Path,
) -> None:
    server = ReliabilityServer(tmp_path, ["stripe"], workers=0)
    server.start()
    try:
        now = int(time.time())
        good = [stripe(sample_event("payment_intent.succeeded", now)) for _ in range(200)]
        surrogate = sample_event("payment_intent.succeeded", now)
        surrogate["id"] = "evt_\ud800"  # valid JSON, but no text SQLite can store
        wrong_type = sample_event("payment_intent.succeeded", now)
        wrong_type["type"] = "payment_intent.\udfff"
        huge_time = sample_event("payment_intent.succeeded", now)
        huge_time["created"] = 10**400
        bad = [stripe(surrogate), stripe(wrong_type)]
        requests = good[:100] + bad + [stripe(huge_time)] + good[100:]
        statuses = asyncio.run(_post_all(f"{server.url}/webhook/stripe", requests))
        assert statuses[:100] + statuses[103:] == [200] * 200
        assert statuses[100:103] == [400, 400, 200]
        assert server.counts()["webhooks"] == 201
    finally:
        server.stop()


def test_a_captured_shopify_body_replayed_300_times_under_fresh_ids_is_stored_once(
    tmp_path: Path,
) -> None:
    server = ReliabilityServer(tmp_path, ["shopify"], workers=1)
    server.start()
    try:
        body = load_sample("shopify", "orders-paid")
        replays = [
            WebhookRequest(
                body,
                {
                    "content-type": "application/json",
                    "x-shopify-hmac-sha256": shopify_signature(SHOPIFY_SECRET, body),
                    "x-shopify-topic": "orders/paid",
                    "x-shopify-webhook-id": f"replay-{n}",
                },
            )
            for n in range(300)
        ]
        statuses = asyncio.run(_post_all(f"{server.url}/webhook/shopify", replays))
        assert statuses == [200] * 300
        server.drained()
        assert server.counts()["webhooks"] == 1
    finally:
        server.stop()
