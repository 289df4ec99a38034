"""ASGI app: ``POST /webhook/{provider}``.

Status codes: 200 stored (or duplicate) and scheduled; 401 (or the provider's own code)
failed verification; 404 unknown provider; 413 body over the limit; 400 authentic but
unusable body; 503 storage unavailable, so the provider retries.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from payhook.core.model import WebhookRequest
from payhook.errors import (
    PayloadError,
    StorageUnavailableError,
    UnknownProviderError,
    VerificationError,
)
from payhook.providers.base import ProviderResponse
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.server.openapi import openapi_document

log = logging.getLogger("payhook.server")


class BodyTooLargeError(Exception):
    pass


class ClientGoneError(Exception):
    """The client disconnected before its body arrived: nothing to store, nobody to answer."""


# JSONResponse's encoding, built once (json.dumps with options builds an encoder per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


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


class WebhookEndpoint:
    """``/webhook/{provider}`` on raw ASGI messages: every delivery passes here, and Starlette's
    Request and Response objects would cost about a fifth of the route's CPU. POST delivers,
    GET answers a provider's challenge, anything else is 405."""

    def __init__(self, runtime: EmbeddedRuntime) -> None:
        self.runtime = runtime
        self.ingest = runtime.ingest
        self.limit = runtime.settings.server.body_limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path_params"]["provider"]
        method = scope["method"]
        if method == "POST":
            try:
                status, body, media_type, extra = await self._deliver(name, scope, receive)
            except ClientGoneError:
                return
        elif method in ("GET", "HEAD"):
            status, body, media_type, extra = self._challenge(name, scope)
        else:
            status, body, media_type, extra = _METHOD_NOT_ALLOWED
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", media_type),
                    (b"content-length", b"%d" % len(body)),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _deliver(self, name: str, scope: Scope, receive: Receive) -> _Answer:
        ingest = self.ingest
        try:
            provider = ingest.provider(name)
        except UnknownProviderError as exc:
            return _problem(404, "unknown_provider", str(exc))
        headers = _headers(scope)
        try:
            body = await _read_body(receive, headers, self.limit)
        except BodyTooLargeError:
            return _problem(413, "body_too_large", f"the body limit is {self.limit} bytes")
        try:
            delivery = _webhook_request(scope, headers, body)
            if provider.verify_blocks:
                prepared = await run_in_threadpool(ingest.prepare, name, delivery)
            else:  # microseconds of CPU: a thread hop would cost more than it saves
                prepared = ingest.prepare(name, delivery)
        except VerificationError as exc:
            log.info("verification failed", extra={"provider": name, "reason": str(exc)})
            return _problem(provider.rejection_status, "verification_failed", str(exc))
        except PayloadError as exc:
            return _problem(400, "invalid_payload", str(exc))
        try:
            duplicates = await self.runtime.writer.store_async(prepared.webhooks)
        except StorageUnavailableError as exc:
            log.error("storage unavailable", extra={"provider": name, "reason": str(exc)})
            return _problem(503, "storage_unavailable", "try again later", retry_after="5")
        return _provider_answer(prepared.acknowledge(duplicates))

    def _challenge(self, name: str, scope: Scope) -> _Answer:
        try:
            provider = self.ingest.provider(name)
        except UnknownProviderError as exc:
            return _problem(404, "unknown_provider", str(exc))
        answer = provider.challenge(_webhook_request(scope, _headers(scope), b""))
        if answer is None:
            return _METHOD_NOT_ALLOWED
        return _provider_answer(answer)


# (status, body, content type, further headers)
_Answer = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]
_JSON_TYPE = b"application/json"


def _problem(status: int, error: str, reason: str, **headers: str) -> _Answer:
    extra = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    body = _ENCODER.encode({"error": error, "reason": reason}).encode()
    return status, body, _JSON_TYPE, extra


# GET answers only a provider's challenge; anything else but POST is not a delivery.
_METHOD_NOT_ALLOWED = _problem(
    405, "method_not_allowed", "webhooks are delivered with POST", allow="GET, POST"
)


def _provider_answer(answer: ProviderResponse) -> _Answer:
    media_type = answer.media_type
    if media_type.startswith("text/") and "charset" not in media_type:
        media_type += "; charset=utf-8"  # as Starlette's Response writes it
    return answer.status, answer.body, media_type.encode(), []


def create_app(
    runtime: EmbeddedRuntime,
    *,
    manage_runtime: bool = True,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """Build the app. With ``manage_runtime`` the app starts and stops the runtime."""

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "providers": sorted(runtime.providers),
                "processed": runtime.processed,
                "processingFailures": runtime.failures,
            }
        )

    document = openapi_document(
        runtime.providers, (p.rejection_status for p in runtime.providers.values())
    )

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if manage_runtime:
            runtime.start()
        try:
            yield {}
        finally:
            if manage_runtime:
                runtime.stop()

    routes: list[BaseRoute] = [
        Route("/webhook/{provider}", WebhookEndpoint(runtime)),
        Route("/healthz", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *extra_routes,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    # A webhook URL is exact: "/webhook/x/" is not found, rather than a 307 that a provider
    # may not follow (and that would re-send the body to another URL if it did).
    app.router.redirect_slashes = False
    return app
