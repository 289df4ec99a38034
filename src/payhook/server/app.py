"""ASGI app: ``POST /webhook/{provider}``.

Status codes: 200 stored (or duplicate) and scheduled; 401 (or the provider's own code)
failed verification; 404 unknown provider; 413 body over the limit; 400 authentic but
unusable body; 503 storage unavailable, so the provider retries.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from payhook.core.model import WebhookRequest
from payhook.errors import (
    PayloadError,
    StorageUnavailableError,
    UnknownProviderError,
    VerificationError,
)
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.server.openapi import openapi_document

log = logging.getLogger("payhook.server")


class BodyTooLargeError(Exception):
    pass


def _error(status: int, error: str, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "reason": reason}, status_code=status, headers=headers)


def _headers(request: Request) -> dict[str, str]:
    """Request headers, names lower-case (ASGI guarantees it); a repeated header: the first
    counts. Read from the raw scope: Starlette's Headers view costs more than the verify."""
    headers: dict[str, str] = {}
    for key, value in request.scope["headers"]:
        name = key.decode("latin-1")
        if name not in headers:
            headers[name] = value.decode("latin-1")
    return headers


async def _read_body(request: Request, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLargeError
        except ValueError:
            pass  # the server's HTTP parser has already rejected a malformed length
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def _webhook_request(request: Request, headers: dict[str, str], body: bytes) -> WebhookRequest:
    return WebhookRequest(
        body=body,
        headers=headers,
        query=dict(request.query_params) if request.scope["query_string"] else {},
        method=request.method,
        url=request.scope["path"],  # the path only: building request.url costs ~8% of a request
    )


def create_app(
    runtime: EmbeddedRuntime,
    *,
    manage_runtime: bool = True,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """Build the app. With ``manage_runtime`` the app starts and stops the runtime."""
    ingest = runtime.ingest
    limit = runtime.settings.server.body_limit_bytes

    async def receive_webhook(request: Request) -> Response:
        name = request.path_params["provider"]
        try:
            provider = ingest.provider(name)
        except UnknownProviderError:
            return _error(404, "unknown_provider", f"no provider named {name!r} is configured")
        try:
            headers = _headers(request)
            body = await _read_body(request, headers, limit)
        except BodyTooLargeError:
            return _error(413, "body_too_large", f"the body limit is {limit} bytes")
        try:
            delivery = _webhook_request(request, headers, body)
            if provider.verify_blocks:
                prepared = await run_in_threadpool(ingest.prepare, name, delivery)
            else:  # microseconds of CPU: a thread hop would cost more than it saves
                prepared = ingest.prepare(name, delivery)
        except VerificationError as exc:
            log.info("verification failed", extra={"provider": name, "reason": str(exc)})
            return _error(provider.rejection_status, "verification_failed", str(exc))
        except PayloadError as exc:
            return _error(400, "invalid_payload", str(exc))
        try:
            duplicates = await runtime.writer.store_async(prepared.webhooks)
        except StorageUnavailableError as exc:
            log.error("storage unavailable", extra={"provider": name, "reason": str(exc)})
            return _error(503, "storage_unavailable", "try again later", **{"Retry-After": "5"})
        answer = prepared.acknowledge(duplicates)
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

    async def challenge(request: Request) -> Response:
        name = request.path_params["provider"]
        try:
            provider = ingest.provider(name)
        except UnknownProviderError:
            return _error(404, "unknown_provider", f"no provider named {name!r} is configured")
        answer = provider.challenge(_webhook_request(request, _headers(request), b""))
        if answer is None:
            return _error(
                405, "method_not_allowed", "webhooks are delivered with POST", Allow="POST"
            )
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

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
        Route("/webhook/{provider}", receive_webhook, methods=["POST"]),
        Route("/webhook/{provider}", challenge, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *extra_routes,
    ]
    return Starlette(routes=routes, lifespan=lifespan)
