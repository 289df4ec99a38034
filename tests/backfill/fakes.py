"""Fake provider APIs: real HTTP servers on a loopback port, answering in each provider's
documented request and response shapes (pagination included)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class FakeApi:
    """Routes every request to ``answer``; ``failures`` are answered first, one per request
    (429s, 500s), and every request is recorded in ``seen``."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.failures: list[Answer] = []
        self.lock = threading.Lock()

    def handle(self, request: Seen) -> Answer:
        with self.lock:
            self.seen.append(request)
            if self.failures:
                return self.failures.pop(0)
        return self.answer(request)

    def answer(self, request: Seen) -> Answer:
        raise NotImplementedError


@contextmanager
def serving(api: FakeApi) -> Iterator[str]:
    """Serve ``api`` on 127.0.0.1 (a free port) and yield its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            seen = Seen(
                self.command,
                parts.path,
                {k: v[-1] for k, v in parse_qs(parts.query).items()},
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            answer = api.handle(seen)
            body = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class FakeStripe(FakeApi):
    """``GET /v1/events``: newest first; ``created[gte]``, ``limit`` (1..100, default 10),
    ``starting_after``; ``{"object": "list", "url": "/v1/events", "has_more", "data"}``;
    ``Authorization: Bearer <key>``, else 401 with Stripe's error object."""

    def __init__(self, api_key: str, events: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.events: list[dict[str, Any]] = list(events or [])

    def answer(self, request: Seen) -> Answer:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            error = {"type": "invalid_request_error", "message": "Invalid API Key provided"}
            return Answer(401, {"error": error})
        if request.method != "GET" or request.path != "/v1/events":
            return Answer(404, {"error": {"type": "invalid_request_error"}})
        limit = int(request.query.get("limit", "10"))
        if not 1 <= limit <= 100:
            return Answer(400, {"error": {"type": "invalid_request_error", "param": "limit"}})
        gte = int(request.query.get("created[gte]", "0"))
        listed = sorted(
            (e for e in self.events if e["created"] >= gte),
            key=lambda e: (e["created"], e["id"]),
            reverse=True,
        )
        after = request.query.get("starting_after")
        if after is not None:
            ids = [e["id"] for e in listed]
            if after not in ids:
                return Answer(400, {"error": {"type": "invalid_request_error"}})
            listed = listed[ids.index(after) + 1 :]
        page = listed[:limit]
        body = {
            "object": "list",
            "url": "/v1/events",
            "has_more": len(listed) > limit,
            "data": page,
        }
        return Answer(200, body)


def _bearer(request: Seen, token: str) -> bool:
    return request.headers.get("authorization") == f"Bearer {token}"


def _iso(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class FakePaddle(FakeApi):
    """``GET /events``: ``after``, ``per_page`` (max 200; this fake caps it at ``page_cap``, as
    Paddle may return fewer), ``order_by=id[ASC|DESC]``; ``{"data", "meta": {"request_id",
    "pagination": {"per_page", "next", "has_more", "estimated_total"}}}``."""

    def __init__(self, api_key: str, events: list[dict[str, Any]], page_cap: int = 200) -> None:
        super().__init__()
        self.api_key, self.events, self.page_cap = api_key, events, page_cap

    def answer(self, request: Seen) -> Answer:
        if not _bearer(request, self.api_key):
            return Answer(403, {"error": {"type": "request_error", "code": "forbidden"}})
        if (request.method, request.path) != ("GET", "/events"):
            return Answer(404, {"error": {"type": "request_error", "code": "not_found"}})
        order = request.query.get("order_by", "id[ASC]")
        listed = sorted(self.events, key=lambda e: e["event_id"], reverse=order == "id[DESC]")
        after = request.query.get("after")
        if after:
            ids = [e["event_id"] for e in listed]
            listed = listed[ids.index(after) + 1 :]
        size = min(int(request.query.get("per_page", "50")), 200, self.page_cap)
        page = listed[:size]
        host = request.headers["host"]
        following = f"http://{host}/events?after={page[-1]['event_id'] if page else ''}"
        following += f"&order_by={order}&per_page={size}"
        pagination = {
            "per_page": size,
            "next": following,
            "has_more": len(listed) > size,
            "estimated_total": len(self.events),
        }
        return Answer(200, {"data": page, "meta": {"request_id": "req", "pagination": pagination}})


class FakeGoCardless(FakeApi):
    """``GET /events`` newest first: ``created_at[gte]``, ``after``, ``limit`` (max 500, capped
    at ``page_cap``); ``{"events", "meta": {"cursors": {"before", "after"}, "limit"}}``;
    ``GoCardless-Version`` is required."""

    def __init__(self, token: str, events: list[dict[str, Any]], page_cap: int = 500) -> None:
        super().__init__()
        self.token, self.events, self.page_cap = token, events, page_cap

    def answer(self, request: Seen) -> Answer:
        if not _bearer(request, self.token):
            return Answer(401, {"error": {"type": "invalid_api_usage", "code": 401}})
        if request.headers.get("gocardless-version") != "2015-07-06":
            return Answer(400, {"error": {"type": "invalid_api_usage", "code": 400}})
        gte = request.query.get("created_at[gte]")
        listed = sorted(self.events, key=lambda e: (e["created_at"], e["id"]), reverse=True)
        if gte:
            listed = [e for e in listed if _iso(e["created_at"]) >= _iso(gte)]
        after = request.query.get("after")
        if after:
            ids = [e["id"] for e in listed]
            listed = listed[ids.index(after) + 1 :]
        size = min(int(request.query.get("limit", "50")), 500, self.page_cap)
        page = listed[:size]
        more = len(listed) > size
        cursors = {"before": None, "after": page[-1]["id"] if more else None}
        return Answer(200, {"events": page, "meta": {"cursors": cursors, "limit": size}})


class FakePayPal(FakeApi):
    """``POST /v1/oauth2/token`` (basic auth, ``grant_type=client_credentials``) and
    ``GET /v1/notifications/webhooks-events`` (``page_size``, ``start_time``, ``end_time``;
    ``{"events", "count", "links"}`` with a ``rel: next`` link while more remain)."""

    TOKEN = "A21AAtesttokenfromthefakepaypal"

    def __init__(
        self, client_id: str, secret: str, events: list[dict[str, Any]], page_cap: int = 300
    ) -> None:
        super().__init__()
        self.basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self.events, self.page_cap = events, page_cap

    def answer(self, request: Seen) -> Answer:
        if (request.method, request.path) == ("POST", "/v1/oauth2/token"):
            if request.headers.get("authorization") != self.basic:
                return Answer(401, {"error": "invalid_client"})
            if parse_qs(request.body.decode()).get("grant_type") != ["client_credentials"]:
                return Answer(400, {"error": "unsupported_grant_type"})
            body = {"access_token": self.TOKEN, "token_type": "Bearer", "expires_in": 32400}
            return Answer(200, body)
        if not _bearer(request, self.TOKEN):
            return Answer(401, {"name": "AUTHENTICATION_FAILURE"})
        start, end = _iso(request.query["start_time"]), _iso(request.query["end_time"])
        listed = sorted(
            (e for e in self.events if start <= _iso(e["create_time"]) <= end),
            key=lambda e: e["create_time"],
            reverse=True,
        )
        offset = int(request.query.get("offset", "0"))
        size = min(int(request.query.get("page_size", "10")), self.page_cap)
        page = listed[offset : offset + size]
        links = []
        if offset + size < len(listed):
            query = "&".join(f"{k}={v}" for k, v in request.query.items() if k != "offset")
            href = f"http://{request.headers['host']}{request.path}?{query}&offset={offset + size}"
            links.append({"href": href, "rel": "next", "method": "GET"})
        return Answer(200, {"events": page, "count": len(page), "links": links})


class FakeSquare(FakeApi):
    """``POST /v2/events`` (SearchEvents): ``limit`` (max 100, capped at ``page_cap``),
    ``query.filter.created_at.start_at``, ``cursor``; ``{"events", "metadata", "cursor"}``."""

    def __init__(self, token: str, events: list[dict[str, Any]], page_cap: int = 100) -> None:
        super().__init__()
        self.token, self.events, self.page_cap = token, events, page_cap

    def answer(self, request: Seen) -> Answer:
        if not _bearer(request, self.token):
            return Answer(401, {"errors": [{"category": "AUTHENTICATION_ERROR"}]})
        if (request.method, request.path) != ("POST", "/v2/events"):
            return Answer(404, {"errors": [{"category": "INVALID_REQUEST_ERROR"}]})
        body = json.loads(request.body)
        start = body.get("query", {}).get("filter", {}).get("created_at", {}).get("start_at")
        listed = sorted(self.events, key=lambda e: e["created_at"], reverse=True)
        if start:
            listed = [e for e in listed if _iso(e["created_at"]) >= _iso(start)]
        offset = int(base64.b64decode(body["cursor"])) if body.get("cursor") else 0
        size = min(int(body.get("limit", 100)), 100, self.page_cap)
        page = listed[offset : offset + size]
        metadata = [{"event_id": e["event_id"], "api_version": "2024-06-04"} for e in page]
        answer: dict[str, Any] = {"events": page, "metadata": metadata}
        if offset + size < len(listed):
            answer["cursor"] = base64.b64encode(str(offset + size).encode()).decode()
        return Answer(200, answer)
