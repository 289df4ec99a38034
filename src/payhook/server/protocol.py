"""Limits on what one HTTP client may cost the embedded server.

uvicorn with httptools has no head size limit, no head or body deadline and no connection cap:
one client streaming a 64 MiB header raised every delivery's latency from 8 ms to 30 s, and
~1,000 idle sockets used up a 1,024 descriptor limit so that every delivery was refused.

``LimitedHttpToolsProtocol`` is uvicorn's own ``HttpToolsProtocol`` with a guard in front of
its parser, so throughput stays uvicorn's and httptools' (the guard adds no timer to a request
that arrives in one read, the usual case). It enforces:

- **head size** (``max_header_bytes``): an incomplete head is kept here, counted, and given
  to the parser in one piece once its blank line has arrived (httptools joins the pieces of a
  header value by concatenation, quadratic in the number of reads: a 64 KiB header fed one byte
  per read cost 110 ms, in one piece 0.1 ms). One byte over the limit is refused with 431 and
  the connection closed, as soon as the bytes pass it. A pipelined head that begins in the
  read that ends the previous request is checked from its parsed fields when it completes.
- **head deadline** (``head_timeout_seconds``): from connecting, or from the first byte of the
  next request on a kept-alive connection, to the end of the head (slowloris).
- **body deadline** (``body_timeout_seconds``): from the end of the head to the end of the body.
- **connections** (``max_connections``): beyond the cap a new connection is closed at once,
  before any byte is read, so open descriptors stay below the process limit.

The idle keep-alive timeout is uvicorn's ``timeout_keep_alive``. A limit that triggers logs a
warning naming it and the client (``LimitWarnings``: at most one per limit per interval).

Why a guard rather than another server: on ~1.2 KB loopback POSTs, uvicorn's h11 protocol
(which bounds the head, but has no deadlines or cap) cost 230 us of CPU per request, httptools
56 us, httptools behind this guard 56-61 us.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("payhook.server")

_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"

# Where a connection is in its current request: the parser's callbacks move it.
_IDLE = 0  # between requests (no byte of the next one parsed yet)
_HEAD = 1  # a request line has begun, its head is not complete
_BODY = 2  # the head is complete, the body is not


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one client may cost; see ``ServerSettings`` for each setting's meaning."""

    max_header_bytes: int
    head_timeout_seconds: float
    body_timeout_seconds: float
    max_connections: int


class LimitWarnings:
    """One warning line per limit per ``interval_seconds`` at most, counting the rest."""

    def __init__(
        self,
        interval_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.logger = logger
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def triggered(self, limit: str, client: str) -> None:
        now = self.clock()
        last = self._last.get(limit)
        if last is not None and now - last < self.interval_seconds:
            self._suppressed[limit] = self._suppressed.get(limit, 0) + 1
            return
        self._last[limit] = now
        suppressed = self._suppressed.pop(limit, 0)
        extra = {"limit": limit, "client": client, "suppressed": suppressed}
        self.logger.warning("HTTP limit reached", extra=extra)


def limited_protocol(
    limits: HttpLimits, warnings: LimitWarnings | None = None
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to pass as ``uvicorn.Config(http=...)``, bound to these limits."""

    class Bound(LimitedHttpToolsProtocol):
        pass

    Bound.limits = limits
    Bound.warnings = warnings or LimitWarnings()
    return Bound


def _address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else "unknown"


_431_REASON = b"Request Header Fields Too Large"
_431_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"31"),
    (b"connection", b"close"),
]
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n"
    b"\r\n" + _431_REASON
)


async def _header_fields_too_large(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 431, "headers": _431_HEADERS})
    await send({"type": "http.response.body", "body": _431_REASON})


def _parsed_head_size(method: bytes, url: bytes, fields: list[tuple[bytes, bytes]]) -> int:
    """``METHOD SP url SP HTTP/1.1 CRLF``, ``name: value CRLF`` per field, ``CRLF``."""
    return len(method) + len(url) + 12 + sum(len(k) + len(v) + 4 for k, v in fields) + 2


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; build it with ``limited_protocol``."""

    limits: ClassVar[HttpLimits]
    warnings: ClassVar[LimitWarnings]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = _IDLE
        # The incomplete head's bytes, not yet given to the parser; except the first ``_fed``,
        # parsed already with the previous read, kept so that a blank line begun there is found.
        self._pending = bytearray()
        self._fed = 0
        # The exact size of the head being parsed, when its first byte was counted here.
        self._head_size: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._accepted = False
        self._refused = False

    # Connection -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Closed before a byte is read or a timer set: the descriptor is released at once.
            self._refused = True
            transport.close()
            self.warnings.triggered(
                "max_connections", _address(transport.get_extra_info("peername"))
            )
            return
        super().connection_made(transport)
        self._accepted = True
        self._arm("head_timeout_seconds", self.limits.head_timeout_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._pending = bytearray()
        if self._accepted:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._state != _BODY:
            data = self._complete_head(data)
            if not data:
                return
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._state == _BODY:
            if self._timer is None:
                self._arm("body_timeout_seconds", self.limits.body_timeout_seconds)
        elif self._state == _HEAD:
            # A request began in this read (pipelined) and its head is partly parsed: keep the
            # last bytes parsed, where the blank line that ends the head may begin.
            tail = data[-3:]
            self._pending = bytearray(tail)
            self._fed = len(tail)
            if self._timer is None:
                self._arm("head_timeout_seconds", self.limits.head_timeout_seconds)

    def _complete_head(self, data: bytes) -> bytes:
        """What to give the parser now: nothing while the head is incomplete (its bytes are
        kept and counted), else the whole head and whatever followed it in the read."""
        pending = self._pending
        searched = len(pending)
        if searched:
            pending += data
            end = pending.find(_HEAD_END, max(0, searched - 3))
            received = len(pending)
        else:
            end = data.find(_HEAD_END)
            received = len(data)
        fed = self._fed
        size = received - fed if end < 0 else end + len(_HEAD_END) - fed
        if size > self.limits.max_header_bytes:
            self._refuse_head()
            return b""
        if end < 0:
            if not searched:
                pending += data
            self._unset_keepalive_if_required()
            if self._timer is None:
                self._arm("head_timeout_seconds", self.limits.head_timeout_seconds)
            return b""
        if searched:
            data = bytes(pending[fed:])
            self._pending = bytearray()
            self._fed = 0
        # Exact when the request line starts this read; after blank lines, or for a head begun
        # in an earlier read, ``on_headers_complete`` checks what was parsed instead.
        self._head_size = None if fed or data[0] in _CRLF else size
        return data

    # Parser callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._state = _HEAD
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._state = _BODY
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        size = self._head_size
        self._head_size = None  # a pipelined head later in the same read is measured below
        if size is None:  # as parsed: exact, but for optional whitespace
            size = _parsed_head_size(self.parser.get_method(), self.url, self.headers)
        if size <= self.limits.max_header_bytes:
            super().on_headers_complete()
            return
        # Parsed already (a pipelined head): answered 431 in its turn, then the connection
        # closes; nothing more is read.
        self._refused = True
        self.warnings.triggered("max_header_bytes", _address(self.client))
        app, self.app = self.app, _header_fields_too_large
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._state = _IDLE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().on_message_complete()

    # Limits ----------------------------------------------------------------------------------

    def _arm(self, limit: str, seconds: float) -> None:
        self._timer = self.loop.call_later(seconds, self._expired, limit)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, limit: str) -> None:
        self._timer = None
        self._refuse(limit)

    def _refuse_head(self) -> None:
        self._refuse("max_header_bytes", answer=_431)

    def _refuse(self, limit: str, answer: bytes = b"") -> None:
        """Stop reading this connection: close it, or, while an earlier request on it is still
        being answered (pipelining), once that answer is sent."""
        if self._refused:
            return
        self._refused = True
        self._cancel_timer()
        self._pending = bytearray()
        self.warnings.triggered(limit, _address(self.client))
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self._state != _BODY:
            cycle.keep_alive = False
            self.flow.pause_reading()
            return
        if answer:
            self.transport.write(answer)
        self.transport.close()
