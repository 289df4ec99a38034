"""Stripe events as the API lists them and as webhooks deliver them, and the configuration of
a payhook that can backfill from a fake Stripe API."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from payhook.core.model import Stored, WebhookRequest
from payhook.providers.stripe import sample_event, stripe_signature
from payhook.runtimes.embedded import EmbeddedRuntime
from tests.conftest import AUDIT_TEST_KEY, count_rows, until  # noqa: F401 - tests import it from here

SECRET = "whsec_backfill_tests_signing_secret"
API_KEY = "sk_test_backfill_key_0123456789"


def stripe_events(now: int, payments: int = 100) -> list[dict[str, Any]]:
    """``payments`` intents processing then succeeded, and half of them refunded: 2.5 events a
    payment (250 for 100), created over the last hour, oldest first."""
    events: list[dict[str, Any]] = []
    for index in range(payments):
        payment = f"pi_backfill_{index:04d}"
        amount = 1000 + index
        kinds = ["payment_intent.processing", "payment_intent.succeeded"]
        if index % 2 == 0:
            kinds.append("charge.refunded")
        for kind in kinds:
            event = sample_event(kind, now, payment_id=payment, amount=amount)
            event["created"] = now - 3600 + len(events)
            events.append(event)
    return events


def signed(event: dict[str, Any], secret: str = SECRET) -> WebhookRequest:
    """The webhook delivering ``event``, signed now as Stripe signs."""
    body = json.dumps(event, indent=2).encode()
    timestamp = int(time.time())
    signature = f"t={timestamp},v1={stripe_signature(secret, timestamp, body)}"
    return WebhookRequest(
        body=body, headers={"content-type": "application/json", "stripe-signature": signature}
    )


def deliver(runtime: EmbeddedRuntime, events: list[dict[str, Any]]) -> None:
    rows = [w for e in events for w in runtime.ingest.verify("stripe", signed(e))]
    assert runtime.writer.store(rows) == [Stored.NEW] * len(events)


def stripe_section(api_base: str, **extra: Any) -> dict[str, Any]:
    return {"secrets": [SECRET], "api_key": API_KEY, "api_base": api_base, **extra}


def runtime_sections(api_base: str) -> dict[str, Any]:
    return {
        "server": {"workers": 2},
        "processing": {"poll_interval_seconds": 0.01},
        "providers": {"stripe": stripe_section(api_base)},
    }


def write_config(folder: Path, api_base: str, api_key: str = API_KEY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "payhook.toml"
    path.write_text(
        "[storage]\n"
        f'path = "{folder / "payhook.db"}"\n'
        "[audit]\n"
        f'key = "{AUDIT_TEST_KEY}"\n'
        "[providers.stripe]\n"
        f'secrets = ["{SECRET}"]\n'
        f'api_key = "{api_key}"\n'
        f'api_base = "{api_base}"\n'
    )
    return path


def processed(db: Path) -> int:
    return count_rows(str(db), "webhooks WHERE status = 'processed'")


def ledger(db: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every payment's record, without its version (a count of writes, which batching varies)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT provider, payment_id, record FROM payments").fetchall()
    finally:
        conn.close()
    found = {}
    for provider, payment_id, record in rows:
        data = json.loads(record)
        data.pop("version", None)
        found[(provider, payment_id)] = data
    return found
