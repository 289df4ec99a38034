"""Fetching a certificate within an overall deadline and a size limit.

A fetcher (the transport: :class:`HttpCertificateFetcher`, or a fake in tests) yields the body
in chunks; :func:`fetch_bytes` checks the monotonic deadline and the size after every chunk and
turns every failure into a VerificationError. A per-read socket timeout alone would let a server
that sends a byte every few seconds hold a fetch for ever.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Protocol, cast
from urllib.parse import urlsplit

from payhook.core.clock import Clock
from payhook.errors import VerificationError, certificate_error

MAX_DOWNLOAD_BYTES = 64 * 1024
_MAX_HEADER_BYTES = 16 * 1024


class Deadline:
    """A point on a monotonic clock, ``seconds`` after its creation."""

    def __init__(self, seconds: float, monotonic: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self._monotonic = monotonic
        self.at = monotonic() + seconds

    @property
    def reason(self) -> str:
        return f"certificate fetch exceeded its {self.seconds:g} s deadline"

    def left(self) -> float:
        """Seconds left, 0 once passed."""
        return max(0.0, self.at - self._monotonic())

    def remaining(self) -> float:
        """Seconds left; TimeoutError once passed (the timeout of the next socket operation)."""
        left = self.left()
        if left <= 0:
            raise TimeoutError(self.reason)
        return left


class CertificateFetcher(Protocol):
    """GET ``url``, yielding the body in chunks; ``deadline`` bounds the whole exchange."""

    def __call__(self, url: str, deadline: Deadline) -> Iterable[bytes]: ...


def fetch_bytes(fetcher: CertificateFetcher, url: str, deadline: Deadline, max_bytes: int) -> bytes:
    """The body at ``url``, cut at the deadline and at ``max_bytes``; every failure, whatever
    the fetcher raised, is a VerificationError naming the reason."""
    chunks: Iterable[bytes] = ()
    data = bytearray()
    try:
        deadline.remaining()
        chunks = fetcher(url, deadline)
        for chunk in chunks:  # ends: the deadline is checked after every chunk
            data += chunk
            if len(data) > max_bytes:
                raise certificate_error(f"certificate download is larger than {max_bytes} bytes")
            deadline.remaining()
    except VerificationError:
        raise
    except TimeoutError as exc:  # the deadline, or a socket timeout set from it
        raise certificate_error(deadline.reason) from exc
    except Exception as exc:  # any transport failure is the same verification failure
        raise certificate_error("could not fetch the certificate") from exc
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):  # a generator: release its connection now
            with contextlib.suppress(Exception):
                close()
    return bytes(data)


class _Replay:
    """A received response, for http.client to parse (it reads through ``makefile``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)


class HttpCertificateFetcher:
    """GET over HTTP/1.1 (TLS for https): no redirects, status 200 only, one deadline.

    Every socket operation (connect, TLS handshake, send, each read) gets the time left as its
    timeout, and the response is read whole (``Connection: close``, at most
    ``max_response_bytes``) before http.client parses it, so neither the headers nor the body
    can drip past the deadline. Name resolution is the one step no timeout reaches (and a host
    with several addresses gets the time left per address); the caller waits at most the
    deadline regardless.
    """

    def __init__(
        self,
        *,
        max_response_bytes: int = MAX_DOWNLOAD_BYTES + _MAX_HEADER_BYTES,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """``tls_context``: default the system's trust store, with hostname checks."""
        self._max_response_bytes = max_response_bytes
        self._context = tls_context

    def __call__(self, url: str, deadline: Deadline) -> list[bytes]:
        # The caller has checked the URL (scheme, host, port) before any fetch.
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        sock = socket.create_connection((host, port), timeout=deadline.remaining())
        try:
            connection = http.client.HTTPConnection(host, port)
            if secure:
                sock.settimeout(deadline.remaining())  # bounds the whole handshake
                sock = self._tls().wrap_socket(sock, server_hostname=host)
                connection = http.client.HTTPSConnection(host, port, context=self._tls())
            connection.sock = sock  # http.client writes the request; the reads are ours
            sock.settimeout(deadline.remaining())
            connection.request("GET", parts.path or "/", headers={"Connection": "close"})
            raw = self._read_all(sock, deadline)
        finally:
            sock.close()
        response = http.client.HTTPResponse(cast(socket.socket, _Replay(raw)), method="GET")
        response.begin()
        if response.status != 200:  # no redirects: they would leave the approved host
            raise OSError(f"HTTP {response.status}")
        return [response.read()]

    def _read_all(self, sock: socket.socket, deadline: Deadline) -> bytes:
        data = bytearray()
        while True:  # ends: every turn reads a byte or more, under the deadline and the limit
            sock.settimeout(deadline.remaining())
            try:
                chunk = sock.recv(8192)
            except ssl.SSLEOFError:  # closed without close_notify; a short body still fails
                chunk = b""
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > self._max_response_bytes:
                raise OSError(f"response larger than {self._max_response_bytes} bytes")

    def _tls(self) -> ssl.SSLContext:
        # Built on first use (it reads the system CA bundle); a race only builds it twice.
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context
