"""``payhook serve``: uvicorn with graceful shutdown (SIGTERM/SIGINT finish in-flight work) and
limits on what one client may cost (``payhook.server.protocol``)."""

from __future__ import annotations

import contextlib
import gc
import logging
import resource
import signal
import socket
import sqlite3
import threading
from collections.abc import Generator, Sequence
from pathlib import Path

import msgspec
import uvicorn
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from payhook.config import ServerSettings, Settings
from payhook.console import OPEN_PATHS, Console
from payhook.errors import PayhookError
from payhook.logs import configure as configure_logging
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.server.admin import create_admin_app
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
        log_config=None,  # uvicorn's own lines go through payhook's handler, in its format
        access_log=False,
        timeout_graceful_shutdown=30,
        server_header=False,
    )


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies under it, else absolute."""
    resolved = Path(path).resolve()
    return (
        str(resolved.relative_to(Path.cwd()))
        if resolved.is_relative_to(Path.cwd())
        else str(resolved)
    )


class StartupError(PayhookError):
    """``payhook serve`` cannot start: a port in use, a database in use or unreadable."""


def listen(host: str, port: int, setting: str) -> socket.socket:
    """A listening socket on ``host:port``, or a StartupError naming the setting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port} ({setting}): {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


class ByListener:
    """One uvicorn server, two listeners: requests that arrived on the admin socket go to the
    admin app, all others (and the lifespan) to the providers' app."""

    def __init__(self, public: ASGIApp, admin: ASGIApp, admin_port: int) -> None:
        self.public = public
        self.admin = admin
        self.admin_port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server and server[1] == self.admin_port:
            await self.admin(scope, receive, send)
        else:
            await self.public(scope, receive, send)


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> int:
    """Run until SIGTERM/SIGINT. Everything that can fail at start-up (the configuration,
    the ports, the database) fails before anything is served, as one StartupError line.
    ``extra_routes`` lets benchmarks add a baseline endpoint."""
    configure_logging(settings.logging.level, settings.logging.format)
    descriptor_limit = raise_descriptor_limit()
    runtime = EmbeddedRuntime(settings)
    public_settings = msgspec.structs.replace(
        settings.server,
        host=host or settings.server.host,
        port=port if port is not None else settings.server.port,
    )
    admin = settings.admin
    with contextlib.ExitStack() as sockets:
        public = sockets.enter_context(
            listen(public_settings.host, public_settings.port, "server.port")
        )
        bound = [public]
        app: ASGIApp = create_app(runtime, extra_routes=extra_routes)
        admin_url = ""
        console: Console | None = None
        if admin.enabled:
            admin_socket = sockets.enter_context(listen(admin.host, admin.port, "admin.port"))
            admin_port = admin_socket.getsockname()[1]
            if admin_port == public.getsockname()[1]:
                raise StartupError("admin.port must differ from server.port")
            bound.append(admin_socket)
            console = Console(runtime)
            admin_app = create_admin_app(
                runtime, token=admin.token, extra_routes=console.routes(), open_paths=OPEN_PATHS
            )
            app = ByListener(app, admin_app, admin_port)
            admin_url = f"http://{admin.host}:{admin_port}"
        try:
            runtime.start()
        except (sqlite3.Error, OSError) as exc:
            raise StartupError(
                f"cannot open the database at {settings.storage.path}: {exc}"
            ) from None
        try:
            server = _Server(server_config(app, public_settings, descriptor_limit=descriptor_limit))
            tune_gc()
            where = f"http://{public_settings.host}:{public.getsockname()[1]}"
            print(
                f"payhook: serving {', '.join(sorted(runtime.providers)) or 'no providers'} on"
                f" {where}/webhook/{{provider}}",
                flush=True,
            )
            if admin_url:
                print(
                    f"payhook: admin on {admin_url} (/console, /healthz, /status, /metrics)",
                    flush=True,
                )
            print(f"payhook: storage {_shown(settings.storage.path)}", flush=True)
            if console is not None:
                console.start()
            server.run(sockets=bound)
        finally:
            if console is not None:
                console.stop()
            runtime.stop()
    print("payhook: stopped; queued work resumes at the next start", flush=True)
    return 0
