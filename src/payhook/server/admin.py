"""The admin listener's app: ``/healthz`` (IETF health-check format), ``/status`` (the same
figures as JSON) and ``/metrics`` (Prometheus), and the console's routes when it is mounted.

It listens on ``[admin] host:port`` (127.0.0.1:8081 by default), apart from the providers'
listener, which answers only webhooks and a bare ``/healthz``. With ``admin.token`` set (it
must be, beyond loopback) every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from payhook.runtimes.metrics import Metrics
from payhook.service.health import MEDIA_TYPE, Figures, check, http_status


class Observed(Protocol):
    """What the admin app reads: the runtime's figures and metrics."""

    metrics: Metrics

    def figures(self) -> Figures: ...


class BearerToken:
    """Every request carries ``Authorization: Bearer <token>`` (compared in constant time), or
    gets 401; paths in ``open_paths`` (the console's login) pass, their own checks apply."""

    def __init__(self, app: ASGIApp, token: str, open_paths: Sequence[str] = ()) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.open_paths = tuple(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.open_paths):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            answer = JSONResponse(
                {"error": "unauthorized", "reason": "the admin token is required"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_admin_app(
    runtime: Observed,
    *,
    token: str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    open_paths: Sequence[str] = (),
) -> Starlette:
    async def healthz(request: Request) -> Response:
        document = check(await run_in_threadpool(runtime.figures))
        return JSONResponse(document, status_code=http_status(document), media_type=MEDIA_TYPE)

    async def status(request: Request) -> Response:
        figures = await run_in_threadpool(runtime.figures)
        document = check(figures)
        body: dict[str, Any] = {
            "status": document["status"],
            "storageWritable": figures.storage_writable,
            "workersExpected": figures.workers_expected,
            "workersAlive": figures.workers_alive,
            "workerRestarts": figures.worker_restarts,
            "queueDepth": figures.queue_depth,
            "oldestQueuedAgeSeconds": round(figures.oldest_queued_age_seconds, 3),
            "deadLetters": figures.dead_letters,
            "outboxFailed": figures.outbox_failed,
            "processed": figures.processed,
            "processingFailures": figures.processing_failures,
        }
        return JSONResponse(body, status_code=http_status(document))

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(generate_latest, runtime.metrics.registry)
        return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)

    middleware = [Middleware(BearerToken, token=token, open_paths=open_paths)] if token else []
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/status", status, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *extra_routes,
    ]
    return Starlette(routes=routes, middleware=middleware)
