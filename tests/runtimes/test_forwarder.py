"""The outbox forwarder against a real HTTP receiver on 127.0.0.1 that verifies signatures
with the ``standardwebhooks`` reference library, or ``httpx.MockTransport`` where a socket
adds nothing; failures, backoff and giving up run on an injected clock (started at the real
time, since the library checks timestamps against it). The outbox's own rules (claims,
leases, failed rows and retries) are tested in tests/backends/sqlite/test_outbox.py."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from payhook.backends.sqlite import GroupCommitWriter, SqliteStore, initialize
from payhook.config import OutboxSettings
from payhook.errors import ConfigError
from payhook.runtimes.forwarder import OutboxForwarder
from payhook.service.process import Processor
from tests.backends.sqlite.helpers import stored, stripe_provider
from tests.backends.sqlite.test_outbox import outbox_row, publish
from tests.conftest import FakeClock, running_runtime

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_YSBkaWZmZXJlbnQga2V5IG9mIDI0IGJ5"
UNROUTABLE = "http://127.0.0.1:9/hook"  # never reached: these tests use a MockTransport
WAIT = 10.0  # upper bound for a thread handshake; never a measured threshold


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """Records each POST, verifies it, answers with the queued statuses, then 204."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            Webhook(SECRET).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        self.requests.append(Received(handler.path, headers, body, verified))
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(WAIT)
        status = (self.statuses.pop(0) if self.statuses else 204) if verified else 401
        handler.send_response(status)
        if 300 <= status < 400:
            handler.send_header("location", "/elsewhere")
        handler.send_header("content-length", "0")
        handler.end_headers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    if state.hold is not None:
        state.hold.set()
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


@pytest.fixture
def real_time_clock() -> FakeClock:
    return FakeClock(float(int(time.time())))


@pytest.fixture
def database(db_path: str) -> str:
    initialize(db_path)
    return db_path


def forwarder(
    path: str,
    url: str,
    clock: FakeClock,
    *,
    secret: str = SECRET,
    max_attempts: int = 10,
    **options: Any,
) -> OutboxForwarder:
    options.setdefault("jitter", lambda: 1.0)
    settings = OutboxSettings(forward_url=url, secret=secret, max_attempts=max_attempts)
    return OutboxForwarder(path, settings, clock, **options)


class Endpoint:
    """An in-memory receiver for ``httpx.MockTransport``: answers with queued statuses, or
    raises queued errors (as the transport would for a connection that failed)."""

    def __init__(self, *answers: int | BaseException) -> None:
        self.answers = list(answers)
        self.sent: list[str] = []
        self.transport = httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers["webhook-id"])
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, BaseException):
            raise answer
        return httpx.Response(answer)


# delivery ------------------------------------------------------------------------------


def test_delivers_a_published_event_signed_with_standard_webhooks(
    database: str, receiver: Receiver, real_time_clock: FakeClock
) -> None:
    webhook = stored(real_time_clock, payment_id="pi_1")
    writer = GroupCommitWriter(database)
    writer.start()
    writer.store([webhook])
    store = SqliteStore(database, writer=writer)
    Processor({"stripe": stripe_provider(real_time_clock)}, store, real_time_clock).process(
        webhook.webhook_id
    )
    published = json.loads(store.conn.execute("SELECT body FROM outbox").fetchone()[0])
    store.close()
    sender = forwarder(database, receiver.url, real_time_clock, writer=writer)

    report = sender.deliver_due()

    writer.stop()
    sender.close()
    assert (report.delivered, report.retrying, report.gave_up) == (1, 0, 0)
    [received] = receiver.requests
    assert received.verified
    assert received.path == "/hook"
    assert received.headers["webhook-id"] == published["id"]
    assert received.headers["webhook-timestamp"] == str(int(real_time_clock()))
    assert received.headers["content-type"] == "application/json"
    assert json.loads(received.body) == published
    row = outbox_row(database, published["id"])
    assert (row["delivered_at"], row["attempts"], row["last_error"]) == (real_time_clock(), 1, None)
    assert forwarder(database, receiver.url, real_time_clock).deliver_due().attempted == 0
    assert len(receiver.requests) == 1


def test_the_embedded_runtime_forwards_what_processing_publishes(
    tmp_path: Path, receiver: Receiver
) -> None:
    with running_runtime(
        tmp_path,
        server={"workers": 1},
        processing={"poll_interval_seconds": 0.01},
        outbox={"forward_url": receiver.url, "secret": SECRET},
        providers={"stripe": {"secrets": ["whsec_runtime_forwarding"]}},
    ) as runtime:
        assert runtime.forwarder is not None
        assert runtime.forwarder.writer is runtime.writer  # its writes share the writer's
        request = runtime.providers["stripe"].sample_request("payment_intent.succeeded")
        runtime.writer.store(runtime.ingest.verify("stripe", request))
        assert receiver.arrived.wait(WAIT)
    [received] = receiver.requests
    assert received.verified
    event = json.loads(received.body)
    assert event["type"] == "payment.updated"
    assert outbox_row(runtime.path, event["id"])["delivered_at"] is not None


def test_a_receiver_that_rejects_the_signature_gets_the_event_again_later(
    database: str, receiver: Receiver, real_time_clock: FakeClock
) -> None:
    publish(database, "pe_1", real_time_clock())
    report = forwarder(database, receiver.url, real_time_clock, secret=OTHER_SECRET).deliver_due()
    assert report.retrying == 1
    assert not receiver.requests[0].verified
    assert outbox_row(database, "pe_1")["last_error"] == "HTTP 401"


def test_a_server_error_is_retried_after_the_backoff(
    database: str, receiver: Receiver, real_time_clock: FakeClock
) -> None:
    receiver.statuses = [500]
    start = real_time_clock()
    publish(database, "pe_1", start)
    sender = forwarder(database, receiver.url, real_time_clock, backoff_base_seconds=2.0)

    assert sender.deliver_due().retrying == 1
    row = outbox_row(database, "pe_1")
    assert (row["attempts"], row["last_error"], row["delivered_at"]) == (1, "HTTP 500", None)
    assert row["next_attempt_at"] == start + 2.0
    real_time_clock.advance(1.0)
    assert sender.deliver_due().attempted == 0  # not due yet
    real_time_clock.advance(1.0)
    assert sender.deliver_due().delivered == 1
    row = outbox_row(database, "pe_1")
    assert (row["attempts"], row["last_error"], row["delivered_at"]) == (2, None, start + 2.0)
    assert [r.verified for r in receiver.requests] == [True, True]


@pytest.mark.parametrize(
    ("jitter", "delays"),
    [(1.0, [1, 2, 4, 8, 10, 10]), (0.0, [0.5, 1, 2, 4, 5, 5])],
)
def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all(
    database: str, clock: FakeClock, jitter: float, delays: list[float]
) -> None:
    publish(database, "pe_1", clock())
    down = Endpoint(*[httpx.ConnectError("refused")] * 6)
    sender = forwarder(
        database,
        UNROUTABLE,
        clock,
        transport=down.transport,
        backoff_base_seconds=1,
        backoff_max_seconds=10,
        jitter=lambda: jitter,
    )
    observed = []
    for _ in delays:
        sender.deliver_due()
        due = outbox_row(database, "pe_1")["next_attempt_at"]
        observed.append(due - clock())
        clock.now = due
    assert observed == delays
    assert outbox_row(database, "pe_1")["last_error"] == "ConnectError: refused"


def test_gives_up_after_max_attempts_until_an_operator_retries(
    database: str, clock: FakeClock
) -> None:
    publish(database, "pe_1", clock())
    endpoint = Endpoint(503, 503, 503)
    sender = forwarder(database, UNROUTABLE, clock, transport=endpoint.transport, max_attempts=3)
    reports = []
    for _ in range(3):
        reports.append(sender.deliver_due())
        clock.advance(3600)
    assert [(r.retrying, r.gave_up) for r in reports] == [(1, 0), (1, 0), (0, 1)]
    row = outbox_row(database, "pe_1")
    assert (row["delivered_at"], row["attempts"]) == (None, 3)
    assert row["last_error"] == "gave up after 3 attempts: HTTP 503"
    assert [(f.event_id, f.attempts) for f in sender.outbox.failed()] == [("pe_1", 3)]

    clock.advance(86400 * 30)
    assert sender.deliver_due().attempted == 0
    assert endpoint.sent == ["pe_1"] * 3

    assert sender.outbox.retry() == ["pe_1"]
    assert sender.deliver_due().delivered == 1
    assert sender.outbox.failed() == []
    assert outbox_row(database, "pe_1")["delivered_at"] == clock()


def test_a_refused_connection_is_a_failed_attempt(database: str, clock: FakeClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    publish(database, "pe_1", clock())
    report = forwarder(database, f"http://127.0.0.1:{port}/hook", clock).deliver_due()
    assert report.retrying == 1
    assert outbox_row(database, "pe_1")["last_error"].startswith("ConnectError")


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    database: str, receiver: Receiver, real_time_clock: FakeClock
) -> None:
    receiver.hold = threading.Event()
    publish(database, "pe_1", real_time_clock())
    sender = forwarder(database, receiver.url, real_time_clock, timeout_seconds=0.2)
    assert sender.deliver_due().retrying == 1
    assert outbox_row(database, "pe_1")["last_error"] == "ReadTimeout: timed out"


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_is_not_followed(
    database: str, receiver: Receiver, real_time_clock: FakeClock, status: int
) -> None:
    receiver.statuses = [status]
    publish(database, "pe_1", real_time_clock())
    assert forwarder(database, receiver.url, real_time_clock).deliver_due().retrying == 1
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert outbox_row(database, "pe_1")["last_error"] == f"HTTP {status}"


def test_deliver_due_sends_at_most_the_limit(database: str, clock: FakeClock) -> None:
    for index in range(3):
        publish(database, f"pe_{index}", clock() + index)
    clock.advance(10)
    endpoint = Endpoint()
    sender = forwarder(database, UNROUTABLE, clock, transport=endpoint.transport)
    assert sender.deliver_due(limit=2).delivered == 2
    assert sender.deliver_due(limit=2).delivered == 1
    assert endpoint.sent == ["pe_0", "pe_1", "pe_2"]  # oldest first


def test_a_claimed_row_is_not_sent_by_a_second_forwarder(database: str, clock: FakeClock) -> None:
    publish(database, "pe_1", clock())
    reports = []

    def slow(request: httpx.Request) -> httpx.Response:
        # While this request is in flight, another forwarder looks for due rows.
        other = forwarder(database, UNROUTABLE, clock, transport=Endpoint().transport)
        reports.append(other.deliver_due())
        return httpx.Response(200)

    sender = forwarder(database, UNROUTABLE, clock, transport=httpx.MockTransport(slow))
    assert sender.deliver_due().delivered == 1
    assert [r.attempted for r in reports] == [0]


class Crash(BaseException):
    """The process dies mid-request (not an error the forwarder could handle)."""


def test_a_crash_during_the_request_sends_the_row_again_after_the_lease(
    database: str, clock: FakeClock
) -> None:
    publish(database, "pe_1", clock())
    with pytest.raises(Crash):
        forwarder(database, UNROUTABLE, clock, transport=Endpoint(Crash()).transport).deliver_due()
    endpoint = Endpoint()
    restarted = forwarder(
        database, UNROUTABLE, clock, transport=endpoint.transport, timeout_seconds=5
    )
    assert restarted.deliver_due().attempted == 0
    clock.advance(2 * 10.0)  # the crashed forwarder's lease: twice its (default) timeout
    assert restarted.deliver_due().delivered == 1
    assert endpoint.sent == ["pe_1"]


def test_run_delivers_until_stopped(
    database: str, receiver: Receiver, real_time_clock: FakeClock
) -> None:
    publish(database, "pe_1", real_time_clock())
    sender = forwarder(database, receiver.url, real_time_clock, poll_interval_seconds=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,))
    thread.start()
    try:
        assert receiver.arrived.wait(WAIT)
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert outbox_row(database, "pe_1")["delivered_at"] is not None
    sender.close()


def test_never_logs_or_stores_the_body(
    database: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    marker = "card-4242-must-stay-out-of-logs"
    publish(database, "pe_1", clock(), marker)
    publish(database, "pe_2", clock(), marker)
    flaky = Endpoint(httpx.ReadError("reset by peer"), 500)
    sender = forwarder(database, UNROUTABLE, clock, transport=flaky.transport)
    with caplog.at_level(logging.DEBUG, logger="payhook"):
        sender.deliver_due()
        clock.advance(60)
        sender.deliver_due()
    assert {r.getMessage() for r in caplog.records} == {
        "event forwarding failed",
        "event forwarded",
    }
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert marker not in logged  # logged by event id and reason only
    for event_id in ("pe_1", "pe_2"):
        assert marker not in (outbox_row(database, event_id)["last_error"] or "")


# configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/hook",
        "file:///etc/passwd",
        "localhost:8080/hook",
        "http:///no-host",
        "http://127.0.0.1:99999/hook",
        "http://[::1/hook",
        "",
    ],
)
def test_refuses_a_forward_url_that_is_not_http(database: str, clock: FakeClock, url: str) -> None:
    with pytest.raises(ConfigError, match="forward_url"):
        forwarder(database, url, clock)


@pytest.mark.parametrize("secret", ["", "whsec_not base64!", "whsec_"])
def test_refuses_a_missing_or_malformed_secret(
    database: str, clock: FakeClock, secret: str
) -> None:
    with pytest.raises(ConfigError, match="secret"):
        forwarder(database, UNROUTABLE, clock, secret=secret)


def test_https_urls_are_accepted(database: str, clock: FakeClock) -> None:
    sent: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200)

    publish(database, "pe_1", clock())
    transport = httpx.MockTransport(record)
    forwarder(database, "https://hooks.example.test/in", clock, transport=transport).deliver_due()
    assert sent == ["https://hooks.example.test/in"]
