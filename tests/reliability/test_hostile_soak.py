"""Long run (``make soak``): every kind of hostile traffic at once, for a minute, against the
real ``payhook serve``, while a provider delivers genuine webhooks beside it.

Idle connections kept open and reopened, a client streaming endless headers, forged bodies of
the costliest shapes, a captured Shopify body replayed under fresh ids, signed events payhook
can never store: every genuine delivery is acknowledged, stored once and processed once; the
replays store nothing more; the unstorable events get 400 alone; nothing gets a 5xx; memory
stays bounded; the keyed audit chain verifies.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from payhook.core.model import WebhookRequest
from payhook.providers.shopify import shopify_signature
from payhook.providers.stripe import sample_event, stripe_signature
from payhook.service.ingest import Ingest
from tests.conftest import count_rows, load_sample
from tests.reliability import fleet, invariants
from tests.reliability.conftest import soak_scale
from tests.reliability.server import ReliabilityServer
from tests.reliability.test_hostile_http import EndlessHeaders, PeakRss, rss_kib

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

IDLE_CONNECTIONS = 300
RSS_GROWTH_LIMIT_MIB = 64


class Paced:
    """Calls ``send`` about ``per_second`` times a second until stopped (or ``seconds``)."""

    def __init__(self, per_second: float, seconds: float, send: Callable[[], None]) -> None:
        self.interval, self.seconds, self.send = 1 / per_second, seconds, send
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while not self.stop.is_set() and time.monotonic() - start < self.seconds:
            self.send()
            n += 1
            self.stop.wait(max(0.0, start + n * self.interval - time.monotonic()))


class IdleConnections:
    """Keeps ``count`` connections open that never send a byte, reopening closed ones."""

    def __init__(self, port: int, count: int, seconds: float) -> None:
        self.port, self.count, self.seconds = port, count, seconds
        self.opened = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sockets: list[socket.socket] = []
        start = time.monotonic()
        try:
            while not self.stop.is_set() and time.monotonic() - start < self.seconds:
                alive = []
                for sock in sockets:
                    try:
                        closed = sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
                    except BlockingIOError:
                        closed = False
                    except OSError:
                        closed = True
                    if closed:
                        sock.close()
                    else:
                        alive.append(sock)
                sockets = alive
                while len(sockets) < self.count:
                    try:
                        sockets.append(socket.create_connection(("127.0.0.1", self.port), 5))
                        self.opened += 1
                    except OSError:
                        break
                self.stop.wait(1.0)
        finally:
            for sock in sockets:
                sock.close()


def test_soak_every_hostile_traffic_at_once_beside_genuine_deliveries(
    tmp_path: Path, record_figures: Callable[..., None]
) -> None:
    seconds = 60 * soak_scale()
    server = ReliabilityServer(tmp_path, ["stripe", "shopify", "braintree", "adyen"], workers=2)
    server.start()
    providers = server.providers()
    ingest = Ingest(providers)
    url = server.url
    statuses: dict[str, Counter[int]] = {k: Counter() for k in ("genuine", "junk", "replay", "bad")}
    acknowledged: set[str] = set()
    sent: set[str] = set()
    lock = threading.Lock()
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))

    def post(kind: str, name: str, request: WebhookRequest, ids: tuple[str, ...] = ()) -> None:
        try:
            status = client.post(
                f"{url}/webhook/{name}", content=request.body, headers=request.headers
            ).status_code
        except httpx.HTTPError:
            status = 0
        with lock:
            statuses[kind][status] += 1
            sent.update(ids)
            if 200 <= status < 300:
                acknowledged.update(ids)

    stripe_secret = fleet.SECTIONS["stripe"]["secrets"][0]

    def stripe(event: dict[str, object]) -> WebhookRequest:
        now = int(time.time())
        body = json.dumps(event).encode()
        signature = stripe_signature(stripe_secret, now, body)
        return WebhookRequest(body, {"stripe-signature": f"t={now},v1={signature}"})

    def genuine() -> None:
        request = providers["stripe"].sample_request()
        post("genuine", "stripe", request, fleet.delivery(ingest, "stripe", request).webhook_ids)

    captured = load_sample("shopify", "orders-paid")
    shopify_secret = fleet.SECTIONS["shopify"]["secrets"][0]
    replays = iter(range(10**9))

    def replay() -> None:
        headers = {
            "x-shopify-hmac-sha256": shopify_signature(shopify_secret, captured),
            "x-shopify-topic": "orders/paid",
            "x-shopify-webhook-id": f"replay-{next(replays)}",
        }
        request = WebhookRequest(captured, headers)
        post("replay", "shopify", request, fleet.delivery(ingest, "shopify", request).webhook_ids)

    def unstorable() -> None:
        event = sample_event("payment_intent.succeeded", int(time.time()))
        event["id"] = "evt_\ud800"
        post("bad", "stripe", stripe(event))

    forged_braintree = (
        b"bt_signature=" + b"0" * 40 + b"%7C" + b"1" * 40 + b"&bt_payload=" + b"%41" * 300_000
    )
    forged_adyen = b'{"notificationItems":[' + b",".join([b"0"] * 30_000) + b"]}"

    def junk() -> None:
        post("junk", "braintree", WebhookRequest(forged_braintree, {}))
        post("junk", "adyen", WebhookRequest(forged_adyen, {}))

    assert server.process is not None
    baseline = rss_kib(server.process.pid)
    streams = [
        Paced(40, seconds, genuine),
        Paced(20, seconds, replay),
        Paced(5, seconds, unstorable),
        Paced(10, seconds, junk),
    ]
    idle = IdleConnections(server.port, IDLE_CONNECTIONS, seconds)
    try:
        with PeakRss(server.process.pid) as memory, EndlessHeaders(server.port) as endless:
            idle.thread.start()
            for stream in streams:
                stream.thread.start()
            for stream in streams:
                stream.thread.join(seconds + 60)
            idle.stop.set()
            endless.stop.set()
            idle.thread.join(30)
        server.drained(timeout=120)
        report = invariants.check(server.db, providers, acknowledged=acknowledged, sent=sent)
    finally:
        client.close()
        server.stop()
    growth_mib = (memory.peak_kib - baseline) / 1024
    record_figures(
        seconds=seconds,
        idle_connections_opened=idle.opened,
        endless_header_connections=endless.connections,
        rss_growth_mib=round(growth_mib, 1),
        statuses={kind: dict(counts) for kind, counts in statuses.items()},
        **report.figures(),
    )
    assert set(statuses["genuine"]) == {200}
    assert set(statuses["replay"]) == {200}
    assert set(statuses["bad"]) == {400}
    assert set(statuses["junk"]) <= {401, 413}
    assert report.problems == []
    assert report.audit_ok
    assert growth_mib < RSS_GROWTH_LIMIT_MIB
    assert count_rows(server.db, "webhooks WHERE provider = 'shopify'") == 1  # 20 replays/s
