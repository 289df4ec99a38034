"""The certificate transport against local servers on loopback (never paypal.com).

Each server handles one connection in a thread and stops when the test ends; every loop is
bounded. Deadlines are short and real, since the transport reads real sockets.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from payhook.errors import VerificationError
from payhook.providers.paypal.certificates import Deadline, HttpCertificateFetcher, fetch_bytes
from tests.providers.paypal_pki import make_ca, make_leaf, pem, rsa_key

Handler = Callable[[socket.socket, threading.Event], None]
DOCUMENT = b"-----BEGIN CERTIFICATE-----\nnot really one\n-----END CERTIFICATE-----\n"


@contextmanager
def serving(handler: Handler, *, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A one-connection server on 127.0.0.1; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    stop = threading.Event()

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            conn.settimeout(5)
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            handler(conn, stop)
        except OSError:
            pass  # the client went away: the test decides what that means
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


def _read_request(conn: socket.socket) -> None:
    request = b""
    for _ in range(64):  # a GET fits in a few reads
        chunk = conn.recv(4096)
        request += chunk
        if not chunk or b"\r\n\r\n" in request:
            return


def answer(response: bytes) -> Handler:
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        _read_request(conn)
        conn.sendall(response)

    return handle


def drip(head: bytes) -> Handler:
    """Sends ``head``, then one byte every 20 ms until the test ends (20 s at most)."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        _read_request(conn)
        conn.sendall(head)
        for _ in range(1000):
            if stop.wait(0.02):
                return
            conn.sendall(b"x")

    return handle


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(20)  # accepts the connection, then says nothing (not even a TLS handshake)


def _fetch(url: str, seconds: float = 2.0, tls_context: ssl.SSLContext | None = None) -> bytes:
    fetcher = HttpCertificateFetcher(tls_context=tls_context)
    return fetch_bytes(fetcher, url, Deadline(seconds), 64 * 1024)


def test_fetches_a_document_served_with_a_content_length() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(DOCUMENT), DOCUMENT)
    with serving(answer(response)) as port:
        assert _fetch(f"http://127.0.0.1:{port}/cert.pem") == DOCUMENT


def test_fetches_a_chunked_document() -> None:
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(DOCUMENT), DOCUMENT)
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    with serving(answer(response)) as port:
        assert _fetch(f"http://127.0.0.1:{port}/cert.pem") == DOCUMENT


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\ntoo short",
        b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200_000,
        b"",
    ],
    ids=["not-found", "redirect", "short-body", "too-large", "no-answer"],
)
def test_anything_but_a_complete_200_is_a_fetch_failure(response: bytes) -> None:
    with (
        serving(answer(response)) as port,
        pytest.raises(VerificationError, match="could not fetch") as caught,
    ):
        _fetch(f"http://127.0.0.1:{port}/cert.pem")
    assert type(caught.value) is VerificationError


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX-Slow: ",  # headers that never end
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",  # a body that never ends
    ],
    ids=["headers", "body"],
)
def test_a_server_dripping_bytes_is_cut_at_the_deadline(head: bytes) -> None:
    with serving(drip(head)) as port:
        started = time.monotonic()
        with pytest.raises(VerificationError, match=r"exceeded its 0\.3 s deadline"):
            _fetch(f"http://127.0.0.1:{port}/cert.pem", seconds=0.3)
        assert time.monotonic() - started < 1.5


def test_a_server_that_never_completes_the_tls_handshake_is_cut_at_the_deadline() -> None:
    with serving(silent) as port:
        started = time.monotonic()
        with pytest.raises(VerificationError, match="deadline"):
            _fetch(f"https://127.0.0.1:{port}/cert.pem", seconds=0.3)
        assert time.monotonic() - started < 1.5


def test_fetches_over_tls_from_a_server_the_context_trusts(tmp_path: Path) -> None:
    ca = make_ca(rsa_key(0))
    server_pem = tmp_path / "server.pem"
    server_pem.write_bytes(
        pem(make_leaf(ca, rsa_key(0), rsa_key(2), names=("localhost",)))
        + rsa_key(2).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(server_pem)
    client = ssl.create_default_context(cadata=pem(ca).decode())
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(DOCUMENT), DOCUMENT)
    with serving(answer(response), tls=server) as port:
        assert _fetch(f"https://localhost:{port}/cert.pem", tls_context=client) == DOCUMENT
