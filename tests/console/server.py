"""A real payhook on loopback for the console's tests: the embedded runtime (writer, workers,
audit) over a real SQLite database, the providers' listener and the admin listener with the
console mounted, each served by uvicorn in a thread of this process."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from payhook.backends.sqlite import GroupCommitWriter, SqliteQueue, initialize
from payhook.config import Settings, parse_settings
from payhook.console import OPEN_PATHS, Console, ConsoleHost
from payhook.core.model import WebhookRequest
from payhook.providers.stripe import sample_event, stripe_signature
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.server.admin import create_admin_app
from payhook.server.app import create_app
from payhook.service.ingest import Ingest
from tests.conftest import AUDIT_TEST_KEY, FakeClock

ADMIN_TOKEN = "console-test-admin-token-0123456789abcdef"
STRIPE_SECRET = "whsec_console_test_secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def settings_for(folder: Path, *, token: str | None = ADMIN_TOKEN) -> Settings:
    admin: dict[str, Any] = {"host": "127.0.0.1", "port": 0}
    if token is not None:
        admin["token"] = token
    return parse_settings(
        {
            "storage": {"path": str(folder / "payhook.db")},
            "server": {"workers": 1},
            "processing": {"retry_base_seconds": 0.2},
            "audit": {"key": AUDIT_TEST_KEY},
            "admin": admin,
            "providers": {
                "stripe": {"secrets": [STRIPE_SECRET]},
                "standard": {"secrets": [STANDARD_SECRET]},
            },
        }
    )


class Listener:
    """One ASGI app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def seed_dead_letters(settings: Settings, payment_ids: list[str]) -> list[str]:
    """Store Stripe deliveries and move them to dead letters as the queue does after its last
    receive (before the runtime starts, with a clock the test moves)."""
    path = settings.storage.path
    initialize(path)
    runtime_providers = EmbeddedRuntime(settings).providers
    writer = GroupCommitWriter(path)
    writer.start()
    ids = []
    try:
        now = int(time.time())
        ingest = Ingest(runtime_providers, clock=lambda: float(now))
        for payment_id in payment_ids:
            request = stripe_request("payment_intent.succeeded", now, payment_id, 4200)
            webhooks = ingest.verify("stripe", request)
            writer.store(webhooks)
            ids.append(webhooks[0].webhook_id)
    finally:
        writer.stop()
    clock = FakeClock(time.time())
    queue = SqliteQueue(path, max_receives=1, visibility_timeout=1, clock=clock)
    queue.receive(10)  # the one receive allowed: it "fails"
    clock.advance(2)
    queue.receive(10)  # past max_receives: dead letters
    queue.conn.close()
    return ids


def stripe_request(event_type: str, now: int, payment_id: str, amount: int) -> WebhookRequest:
    body = json.dumps(sample_event(event_type, now, payment_id=payment_id, amount=amount)).encode()
    signature = stripe_signature(STRIPE_SECRET, now, body)
    return WebhookRequest(body, {"stripe-signature": f"t={now},v1={signature}"})


@dataclass
class Payhook:
    """The runtime, its two listeners and the console."""

    settings: Settings
    runtime: EmbeddedRuntime
    console: Console
    webhooks: Listener
    admin: Listener
    dead_letter_ids: list[str] = field(default_factory=list)

    @property
    def console_url(self) -> str:
        return f"{self.admin.url}/console"

    def deliver_stripe(
        self, event_type: str, payment_id: str, amount: int = 2000, now: int | None = None
    ) -> str:
        """POST a signed Stripe delivery to the providers' listener; its event id."""
        request = stripe_request(event_type, now or int(time.time()), payment_id, amount)
        answer = httpx.post(
            f"{self.webhooks.url}/webhook/stripe", content=request.body, headers=request.headers
        )
        assert answer.status_code == 200, answer.text
        return str(json.loads(request.body)["id"])

    def deliver_sample(self, provider: str) -> str:
        request = self.runtime.providers[provider].sample_request()
        answer = httpx.post(
            f"{self.webhooks.url}/webhook/{provider}", content=request.body, headers=request.headers
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["webhookId"])

    def wait_for(self, predicate: Callable[[], bool], seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {seconds} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.console.stop()
        self.admin.stop()
        self.webhooks.stop()
        self.runtime.stop()


def start(
    settings: Settings, *, dead_letters: list[str] | None = None, sample_seconds: float = 60.0
) -> Payhook:
    ids = seed_dead_letters(settings, dead_letters) if dead_letters else []
    runtime = EmbeddedRuntime(settings)
    runtime.start()
    host: ConsoleHost = runtime
    console = Console(host, sample_seconds=sample_seconds)
    admin = create_admin_app(
        runtime,
        token=settings.admin.token,
        extra_routes=console.routes(),
        open_paths=OPEN_PATHS,
    )
    console.start()
    return Payhook(
        settings,
        runtime,
        console,
        Listener(create_app(runtime)),
        Listener(admin),
        ids,
    )
