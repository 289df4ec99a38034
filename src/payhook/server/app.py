"""The providers' ASGI app: ``POST /webhook/{provider}`` (answers:
``payhook.service.ingest.STATUSES``) and a bare ``/healthz``. Every answered delivery is
counted, timed and logged in one line (``DeliveryLog``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from payhook.core.model import Stored, WebhookRequest
from payhook.errors import PayhookError
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.server.openapi import openapi_document
from payhook.service.health import MEDIA_TYPE, check
from payhook.service.ingest import METHOD_NOT_ALLOWED, Answer, PreparedDelivery

log = logging.getLogger("payhook.server")


class BodyTooLargeError(Exception):
    pass


class ClientGoneError(Exception):
    """The client disconnected before its body arrived: nothing to store, nobody to answer."""


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers, names lower-case (ASGI guarantees it); a repeated header: the first
    counts. Read from the raw scope: Starlette's Headers view costs more than the verify."""
    headers: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = key.decode("latin-1")
        if name not in headers:
            headers[name] = value.decode("latin-1")
    return headers


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLargeError
        except ValueError:
            pass  # the server's HTTP parser has already rejected a malformed length
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _webhook_request(scope: Scope, headers: dict[str, str], body: bytes) -> WebhookRequest:
    query = scope["query_string"]
    return WebhookRequest(
        body=body,
        headers=headers,
        # As Starlette's query_params: blank values kept, a repeated key's last value counts.
        query=dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {},
        method=scope["method"],
        url=scope["path"],  # the path only: signatures over a URL use the configured one
    )


class DeliveryLog:
    """What every answered delivery leaves behind: ``payhook_deliveries_total``, the
    acknowledgment time, ``payhook_verification_failures_total`` with its bounded reason,
    and one log line (provider, webhook id, event id, status, duplicate, milliseconds; never a
    payload or a secret) unless ``logging.deliveries`` is off."""

    def __init__(self, runtime: EmbeddedRuntime) -> None:
        metrics = runtime.metrics
        self.deliveries = metrics.deliveries
        self.ack_seconds = metrics.ack_seconds
        self.verification_failures = metrics.verification_failures
        self.log_lines = runtime.settings.logging.deliveries
        self.known = frozenset(runtime.providers)

    def record(
        self,
        name: str,
        answer: Answer,
        prepared: PreparedDelivery | None,
        stored: Sequence[Stored] | PayhookError | None,
        seconds: float,
    ) -> None:
        # Label values stay bounded: a provider name that is not configured is "unknown".
        provider = name if name in self.known else "unknown"
        self.deliveries.labels(provider, str(answer.status)).inc()
        self.ack_seconds.observe(seconds)
        if answer.verification is not None:
            self.verification_failures.labels(provider, answer.verification).inc()
        if not self.log_lines:
            return
        extra: dict[str, Any] = {"provider": provider, "status": answer.status}
        if prepared is not None and prepared.webhooks:
            first = prepared.webhooks[0]
            extra["webhook_id"], extra["event_id"] = first.webhook_id, first.event_id
            if len(prepared.webhooks) > 1:
                extra["events"] = len(prepared.webhooks)
            if isinstance(stored, Sequence):
                extra["duplicate"] = all(result is Stored.DUPLICATE for result in stored)
        if answer.verification is not None:
            extra["verification"] = answer.verification
        extra["ms"] = round(seconds * 1000, 2)
        log.info("delivery", extra=extra)


class WebhookEndpoint:
    """``/webhook/{provider}`` on raw ASGI messages: every delivery passes here, and Starlette's
    Request and Response objects would cost about a fifth of the route's CPU. The flow and
    every answer come from ``service.ingest``; this reads the request and writes the answer.
    POST delivers, GET answers a provider's challenge, anything else is 405."""

    def __init__(self, runtime: EmbeddedRuntime) -> None:
        self.runtime = runtime
        self.ingest = runtime.ingest
        self.log = DeliveryLog(runtime)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path_params"]["provider"]
        method = scope["method"]
        if method == "POST":
            try:
                answer = await self._deliver(name, scope, receive)
            except ClientGoneError:
                return
        elif method in ("GET", "HEAD"):
            answer = self.ingest.challenge(name, _webhook_request(scope, _headers(scope), b""))
        else:
            answer = METHOD_NOT_ALLOWED
        media_type = answer.media_type
        if media_type.startswith("text/") and "charset" not in media_type:
            media_type += "; charset=utf-8"  # as Starlette's Response writes it
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", media_type.encode()),
                    (b"content-length", b"%d" % len(answer.body)),
                    *((k.encode(), v.encode()) for k, v in answer.headers),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def _deliver(self, name: str, scope: Scope, receive: Receive) -> Answer:
        ingest = self.ingest
        provider = ingest.route(name)
        if isinstance(provider, Answer):
            self.log.record(name, provider, None, None, 0.0)
            return provider
        headers = _headers(scope)
        try:
            body = await _read_body(receive, headers, ingest.body_limit(provider))
        except BodyTooLargeError:
            answer = ingest.too_large(provider)
            self.log.record(name, answer, None, None, 0.0)
            return answer
        started = time.perf_counter()  # from the body's last byte
        delivery = _webhook_request(scope, headers, body)
        if provider.verify_blocks:
            prepared = await run_in_threadpool(ingest.prepare, name, delivery)
        else:  # microseconds of CPU: a thread hop would cost more than it saves
            prepared = ingest.prepare(name, delivery)
        if isinstance(prepared, Answer):
            self.log.record(name, prepared, None, None, time.perf_counter() - started)
            return prepared
        try:
            stored: Sequence[Stored] | PayhookError = await self.runtime.writer.store_async(
                prepared.webhooks
            )
        except PayhookError as exc:
            stored = exc
        answer = ingest.finish(prepared, stored)
        self.log.record(name, answer, prepared, stored, time.perf_counter() - started)
        return answer


def create_app(runtime: EmbeddedRuntime, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The providers' app over ``runtime``, which its caller starts and stops (``serve``
    starts it before it listens, so that a start-up failure is one line)."""

    async def health(request: Request) -> Response:
        # Status only, for a load balancer: no provider names, no counters (the admin
        # listener's /healthz has the checks). A warning still serves webhooks: pass.
        failing = check(await run_in_threadpool(runtime.figures))["status"] == "fail"
        return JSONResponse(
            {"status": "fail" if failing else "pass"},
            status_code=503 if failing else 200,
            media_type=MEDIA_TYPE,
        )

    document = openapi_document(
        runtime.providers, (p.rejection_status for p in runtime.providers.values())
    )

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes: list[BaseRoute] = [
        Route("/webhook/{provider}", WebhookEndpoint(runtime)),
        Route("/healthz", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *extra_routes,
    ]
    app = Starlette(routes=routes)
    # A webhook URL is exact: "/webhook/x/" is not found, rather than a 307 that a provider
    # may not follow (and that would re-send the body to another URL if it did).
    app.router.redirect_slashes = False
    return app
