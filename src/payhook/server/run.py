"""``payhook serve``: uvicorn with graceful shutdown (SIGTERM/SIGINT finish in-flight work) and
limits on what one client may cost (``payhook.server.protocol``)."""

from __future__ import annotations

import contextlib
import gc
import logging
import resource
import signal
import threading
from collections.abc import Generator, Sequence

import msgspec
import uvicorn
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from payhook.config import ServerSettings, Settings
from payhook.logs import configure as configure_logging
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.server.app import create_app
from payhook.server.protocol import HttpLimits, limited_protocol

log = logging.getLogger("payhook.server")


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown; a clean stop exits 0 instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


#: Allocations (net of frees) between young-generation collections. Requests free almost all
#: they allocate by reference counting, so at the default (700) the collector still ran every
#: ~13 requests for ~90 us, holding the GIL that the writer and the event loop share.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Once everything is loaded: move the start-up objects out of the collector's way
    (``gc.freeze``) and collect the young generation less often. Cycles are still collected."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


#: Descriptors kept for everything but client connections when ``max_connections`` is derived
#: from the descriptor limit: SQLite opens the database and its WAL in every thread that uses
#: it (35 descriptors in all with 2 workers, two more per worker, up to 64 workers), plus log
#: files, the listener, the event loop, and outbound connections (outbox, PayPal certificates).
DESCRIPTOR_RESERVE = 256

#: When the hard limit is unlimited (macOS), the soft limit is raised to this (OPEN_MAX).
UNLIMITED_DESCRIPTORS_TARGET = 10_240


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open descriptors (RLIMIT_NOFILE) to the hard limit; return the
    soft limit now in force (unchanged if it could not be raised)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_DESCRIPTORS_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def connection_cap(configured: int, descriptor_limit: int) -> int:
    """Open connections at most: ``configured`` (0: as many as the descriptor limit allows,
    leaving ``DESCRIPTOR_RESERVE``), never more than the limit allows."""
    allowed = max(descriptor_limit - DESCRIPTOR_RESERVE, descriptor_limit // 2)
    if configured and configured > allowed:
        log.warning(
            "server.max_connections is above what the descriptor limit allows",
            extra={"configured": configured, "descriptor_limit": descriptor_limit, "used": allowed},
        )
    return min(configured, allowed) if configured else allowed


def http_limits(server: ServerSettings, descriptor_limit: int) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=server.max_header_bytes,
        head_timeout_seconds=server.head_timeout_seconds,
        body_timeout_seconds=server.body_timeout_seconds,
        max_connections=connection_cap(server.max_connections, descriptor_limit),
    )


def server_config(app: ASGIApp, server: ServerSettings, *, descriptor_limit: int) -> uvicorn.Config:
    """uvicorn's configuration for ``payhook serve``: httptools behind the limits."""
    limits = http_limits(server, descriptor_limit)
    log.info(
        "HTTP limits",
        extra={
            "max_header_bytes": limits.max_header_bytes,
            "head_timeout_seconds": limits.head_timeout_seconds,
            "body_timeout_seconds": limits.body_timeout_seconds,
            "keepalive_timeout_seconds": server.keepalive_timeout_seconds,
            "max_connections": limits.max_connections,
            "descriptor_limit": descriptor_limit,
        },
    )
    return uvicorn.Config(
        app,
        host=server.host,
        port=server.port,
        http=limited_protocol(limits),
        ws="none",  # no WebSocket routes: an Upgrade header is an ordinary request
        # uvicorn annotates an int but only passes it to loop.call_later, which takes seconds.
        timeout_keep_alive=server.keepalive_timeout_seconds,  # type: ignore[arg-type]
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=30,
        server_header=False,
    )


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> int:
    """Run until SIGTERM/SIGINT. ``extra_routes`` lets benchmarks add a baseline endpoint."""
    configure_logging(logging.INFO)
    descriptor_limit = raise_descriptor_limit()
    runtime = EmbeddedRuntime(settings)
    app = create_app(runtime, extra_routes=extra_routes)
    bind_host = host or settings.server.host
    bind_port = port if port is not None else settings.server.port
    listen = msgspec.structs.replace(settings.server, host=bind_host, port=bind_port)
    server = _Server(server_config(app, listen, descriptor_limit=descriptor_limit))
    tune_gc()
    print(
        f"payhook: serving {', '.join(sorted(runtime.providers)) or 'no providers'} on "
        f"http://{bind_host}:{bind_port}/webhook/{{provider}} (storage {settings.storage.path})",
        flush=True,
    )
    server.run()
    print("payhook: stopped; queued work resumes at the next start", flush=True)
    return 0
