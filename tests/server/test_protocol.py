"""The HTTP limits (``payhook.server.protocol``) on a real uvicorn server on a free loopback
port, in front of a small ASGI app that reads the body and answers its size.

Deadlines are short here (``SHORT``); each wait is bounded, and what is asserted is the
outcome (an answer, a closed connection, a log line), never how long it took.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from payhook.server.protocol import HttpLimits, LimitWarnings, limited_protocol

LIMIT = 4096
SHORT = 0.3  # seconds
WAIT = 10.0  # the longest any single wait may take (a bound, not an assertion)


@dataclass
class Served:
    port: int
    warnings: list[logging.LogRecord] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)  # size of every read the server made
    url_pieces: list[int] = field(default_factory=list)  # parser callbacks per request URL
    disconnects: list[str] = field(default_factory=list)  # paths whose app saw a disconnect

    def connect(self) -> Client:
        return Client(self.port)

    def warned(self, limit: str) -> list[logging.LogRecord]:
        return [r for r in self.warnings if getattr(r, "limit", None) == limit]


class _Records(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def serving(**limits: Any) -> Iterator[Served]:
    """A uvicorn server with ``limited_protocol`` (defaults: ``LIMIT``, ``SHORT`` deadlines,
    64 connections) on a socket bound here, stopped afterwards."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    served = Served(port=listener.getsockname()[1])
    keepalive = limits.pop("keepalive_timeout_seconds", SHORT)
    bound = HttpLimits(
        **{
            "max_header_bytes": LIMIT,
            "head_timeout_seconds": SHORT,
            "body_timeout_seconds": SHORT,
            "max_connections": 64,
            **limits,
        }
    )
    logger = logging.getLogger(f"tests.server.protocol.{served.port}")
    logger.propagate = False
    logger.handlers[:] = [_Records(served.warnings)]

    class Counting(limited_protocol(bound, LimitWarnings(logger=logger))):  # type: ignore[misc]
        def data_received(self, data: bytes) -> None:
            served.reads.append(len(data))
            super().data_received(data)

        def on_message_begin(self) -> None:
            served.url_pieces.append(0)
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            served.url_pieces[-1] += 1
            super().on_url(url)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                served.disconnects.append(scope["path"])
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"%d" % size
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(
        app,
        http=Counting,
        ws="none",
        lifespan="off",
        log_config=None,
        log_level="warning",
        timeout_keep_alive=keepalive,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the test server did not start"
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(WAIT)
        listener.close()


def request(path: str = "/", headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def head_of(size: int) -> bytes:
    """A request (no body) whose head is exactly ``size`` bytes."""
    bare = request(headers=(("X-Fill", ""),))
    return request(headers=(("X-Fill", "a" * (size - len(bare))),))


class Client:
    """One connection to the test server, reading responses as they come."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def trickle(self, data: bytes) -> None:
        """One byte per send, with a pause that gives the server one read per byte."""
        for byte in data:  # bounded by len(data)
            self.sock.send(bytes([byte]))
            time.sleep(0.002)

    def _more(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        self.buffer += chunk
        return bool(chunk)

    def response(self) -> tuple[int, bytes] | None:
        """Status and body of the next response, or None if the connection closed first."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._more():
                return None
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            if not self._more():
                return None
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return int(head.split(b" ", 2)[1]), rest[:length]

    def closed_by_server(self) -> bool:
        """True once the server closes the connection (within ``WAIT``), False if it stays
        open."""
        try:
            while self._more():
                pass
        except TimeoutError:
            return False
        return True


# head size ---------------------------------------------------------------------------------


@pytest.mark.parametrize("whitespace", [0, 4], ids=["plain", "padded"])
def test_a_head_of_exactly_the_limit_is_served_and_one_byte_more_gets_431(whitespace: int) -> None:
    def head(size: int) -> bytes:  # optional whitespace, which the parser drops, counts too
        return head_of(size).replace(
            b"X-Fill: " + b"a" * whitespace, b"X-Fill: " + b" " * whitespace
        )

    with serving() as served, served.connect() as at_limit, served.connect() as over:
        at_limit.send(head(LIMIT))
        assert at_limit.response() == (200, b"0")
        over.send(head(LIMIT + 1))
        assert over.response() == (431, b"Request Header Fields Too Large")
        assert over.closed_by_server()
    [warning] = served.warned("max_header_bytes")
    assert warning.client.startswith("127.0.0.1:")  # type: ignore[attr-defined]


def test_a_header_streamed_forever_is_cut_after_the_limit_and_another_client_is_served() -> None:
    with serving(head_timeout_seconds=WAIT) as served:
        with served.connect() as stream:
            stream.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
            cut, sent = False, 0
            while not cut and sent < 64 * 1024 * 1024:  # bounded: 64 MiB at most
                try:
                    stream.send(b"a" * 16384)
                    sent += 16384
                except (BrokenPipeError, ConnectionResetError):  # the server closed it
                    cut = True
            assert cut or stream.closed_by_server()
        # The server read at most the limit and one read more.
        assert sum(served.reads) <= LIMIT + max(served.reads)
        with served.connect() as other:
            other.send(request(body=b"{}"))
            assert other.response() == (200, b"2")
    assert served.warned("max_header_bytes")


def test_a_head_sent_byte_by_byte_reaches_the_parser_in_one_piece() -> None:
    with serving(head_timeout_seconds=WAIT) as served, served.connect() as client:
        client.trickle(request("/" + "p" * 200, body=b"{}"))
        assert client.response() == (200, b"2")
    assert len(served.reads) > 1
    assert served.url_pieces == [1]  # httptools joins pieces at quadratic cost: none here


def test_pipelined_requests_are_answered_in_order_and_an_oversized_one_gets_431() -> None:
    first, second, third = request("/a"), request("/b", body=b"xy"), request("/c")
    with serving(head_timeout_seconds=WAIT) as served:
        with served.connect() as client:
            client.send(first + second + third[:-1])
            time.sleep(0.05)
            client.send(third[-1:])  # the blank line ending the head began in the last read
            responses = [client.response() for _ in range(3)]
            assert responses == [(200, b"0"), (200, b"2"), (200, b"0")]
            client.send(b"\r\n" + request("/d"))  # a blank line before a request is allowed
            assert client.response() == (200, b"0")
        with served.connect() as client:
            client.send(first + head_of(LIMIT + 1))
            assert client.response() == (200, b"0")
            assert client.response() == (431, b"Request Header Fields Too Large")
            assert client.closed_by_server()


# deadlines ---------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline() -> None:
    with serving() as served, served.connect() as client:
        assert client.closed_by_server()
    assert served.warned("head_timeout_seconds")


@pytest.mark.parametrize("kept_alive", [False, True], ids=["new", "kept-alive"])
def test_half_a_head_is_closed_at_the_head_deadline(kept_alive: bool) -> None:
    with serving(keepalive_timeout_seconds=WAIT * 3) as served, served.connect() as client:
        if kept_alive:
            client.send(request())
            assert client.response() == (200, b"0")
        client.send(request()[:25])
        assert client.closed_by_server()
    assert served.warned("head_timeout_seconds")


def test_a_stalled_body_is_closed_at_the_body_deadline_and_one_in_time_is_served() -> None:
    with serving(body_timeout_seconds=1.0) as served:
        with served.connect() as client:
            client.send(request(body=b"z" * 200_000))  # several reads, well within the deadline
            assert client.response() == (200, b"200000")
        assert not served.warnings
        with served.connect() as client:
            client.send(request("/stalled", body=b"0123456789" * 10)[:-90])
            assert client.closed_by_server()
        deadline = time.monotonic() + WAIT
        while not served.disconnects and time.monotonic() < deadline:
            time.sleep(0.01)
    assert served.disconnects == ["/stalled"]  # the app learnt that the client is gone
    assert served.warned("body_timeout_seconds")


# connections -------------------------------------------------------------------------------


def test_connections_over_the_cap_are_closed_at_once_and_open_ones_keep_working() -> None:
    limits = {"max_connections": 8, "head_timeout_seconds": WAIT * 3}
    with serving(**limits) as served, contextlib.ExitStack() as stack:
        open_ones = [stack.enter_context(served.connect()) for _ in range(8)]
        for client in open_ones:  # every one of them is accepted and counted
            client.send(request())
            assert client.response() == (200, b"0")
        extra = stack.enter_context(served.connect())
        assert extra.closed_by_server()
        for client in open_ones:
            client.send(request(body=b"ok"))
            assert client.response() == (200, b"2")
    assert served.warned("max_connections")


# rate-limited warnings ---------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limit_warnings_are_one_line_per_limit_per_interval_counting_the_rest() -> None:
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("tests.server.protocol.warnings")
    logger.propagate = False
    logger.handlers[:] = [_Records(records)]
    clock = _Clock()
    warnings = LimitWarnings(interval_seconds=10.0, clock=clock, logger=logger)
    for _ in range(5):
        warnings.triggered("head_timeout_seconds", "10.0.0.1:1")
    warnings.triggered("max_connections", "10.0.0.2:2")
    clock.now += 10.0
    warnings.triggered("head_timeout_seconds", "10.0.0.3:3")
    logged = [(r.levelname, r.limit, r.client, r.suppressed) for r in records]  # type: ignore[attr-defined]
    assert logged == [
        ("WARNING", "head_timeout_seconds", "10.0.0.1:1", 0),
        ("WARNING", "max_connections", "10.0.0.2:2", 0),
        ("WARNING", "head_timeout_seconds", "10.0.0.3:3", 4),
    ]
