"""The console as Starlette routes under ``/console``: who may see it, CSRF on every action,
security headers, and the glue between a page function and its template.

Every page is behind the admin token (a session cookie after the login form, or the bearer
header); with no token configured the admin listener is on loopback and the console is open,
and says so in its header. Every POST carries the session's CSRF token or is refused (403).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from payhook.backends.sqlite.reader import CursorError, SqliteReader
from payhook.console import actions, pages
from payhook.console.call import PREFIX, Call, Handler
from payhook.console.guard import host_name, is_loopback, plain, read_form, safe_next, secure
from payhook.console.history import FigureHistory
from payhook.console.host import ConsoleHost
from payhook.console.session import COOKIE, Session, Sessions
from payhook.errors import NotFoundError, PayhookError
from payhook.views import iso, money

log = logging.getLogger("payhook.console")

#: What the admin listener's bearer check lets through: the console checks its own sessions.
OPEN_PATHS = (PREFIX,)
HERE = Path(__file__).parent


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every provider-supplied string is escaped, in every template
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = iso
    env.filters["money"] = lambda amount, currency=None: money(amount, currency)
    env.globals["prefix"] = PREFIX
    return env


class Console:
    """The console over one host. ``routes()`` for the admin app; ``start``/``stop`` run the
    sampler that keeps the overview's hour of figures while nobody looks."""

    def __init__(
        self,
        host: ConsoleHost,
        *,
        clock: Callable[[], float] = time.time,
        sample_seconds: float = 60.0,
    ) -> None:
        self.host = host
        self.settings = host.settings
        self.clock = clock
        self.sessions = Sessions(self.settings.admin.token, clock)
        self.history = FigureHistory(
            host.figures, host.metrics, clock, sample_seconds=sample_seconds
        )
        self.audit_result: dict[str, Any] | None = None
        self.templates = _environment()
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.history.observe()
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample, name="payhook-console", daemon=True)
        self._sampler.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
            self._sampler = None

    def _sample(self) -> None:
        while not self._stop.wait(min(5.0, self.history.sample_seconds / 4)):
            try:
                self.history.observe()
            except Exception:
                log.exception("console: sampling the figures failed; trying again")

    # reading and rendering -------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[SqliteReader]:
        """A read-only connection for one request (cheap, and never shared across threads)."""
        reader = SqliteReader(self.settings.storage.path)
        try:
            yield reader
        finally:
            reader.close()

    def render(self, call: Call, template: str, *, status: int = 200, **context: Any) -> Response:
        body = self.templates.get_template(template).render(
            csrf=call.csrf,
            open_console=self.sessions.open,
            admin_host=self.settings.admin.host,
            path=call.request.url.path,
            **context,
        )
        return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})

    # routes ----------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            return self._endpoint(handler, action=False)

        def action(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            return self._endpoint(handler, action=True)

        inner: list[BaseRoute] = [
            Route("/", page(pages.overview), methods=["GET"]),
            Route("/login", self._login_form, methods=["GET"]),
            Route("/login", self._login, methods=["POST"]),
            Route("/logout", action(actions.logout), methods=["POST"]),
            Route("/deliveries", page(pages.deliveries), methods=["GET"]),
            Route("/deliveries/live", page(pages.live), methods=["GET"]),
            Route("/deliveries/{webhook_id}", page(pages.delivery), methods=["GET"]),
            Route("/deliveries/{webhook_id}/payload", page(pages.payload), methods=["GET"]),
            Route("/deliveries/{webhook_id}/replay", action(actions.replay), methods=["POST"]),
            Route("/payments", page(pages.payments), methods=["GET"]),
            Route("/payments/{provider}/{payment_id:path}", page(pages.payment), methods=["GET"]),
            Route("/dead-letters", page(pages.dead_letters), methods=["GET"]),
            Route("/dead-letters/redrive", action(actions.redrive), methods=["POST"]),
            Route("/outbox/retry", action(actions.retry), methods=["POST"]),
            Route("/audit/verify", action(actions.verify_audit), methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return [Mount(PREFIX, routes=inner)]

    def _endpoint(
        self, handler: Handler, *, action: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            refused = self._refuse_host(request)
            if refused is not None:
                return secure(refused)
            session, cookie = self._session(request)
            if session is None:
                return secure(self._unauthenticated(request))
            call = Call(request, session, self.sessions.csrf(session))
            if action:
                call.form = await read_form(request)
                given = call.form.get("csrf", [request.headers.get("x-csrf-token", "")])[0]
                if not self.sessions.csrf_matches(session, given):
                    return secure(plain("refused: this action needs the page's CSRF token", 403))
            try:
                response = await run_in_threadpool(handler, self, call)
            except NotFoundError as exc:
                response = self.render(call, "error.html", status=404, message=str(exc))
            except CursorError as exc:
                response = self.render(call, "error.html", status=400, message=str(exc))
            except PayhookError as exc:
                response = self.render(call, "error.html", status=503, message=str(exc))
            if cookie is not None:
                self._set_cookie(response, request, cookie)
            return secure(response)

        return endpoint

    def _refuse_host(self, request: Request) -> Response | None:
        if not self.sessions.open:
            return None
        # Open only on loopback, and only to loopback names: a page elsewhere that rebinds
        # its own name to 127.0.0.1 is refused.
        if not is_loopback(self.settings.admin.host):
            return plain("the console needs admin.token when admin.host is not loopback", 403)
        if not is_loopback(host_name(request.headers.get("host", ""))):
            return plain("the open console answers loopback names only", 403)
        return None

    def _session(self, request: Request) -> tuple[Session | None, str | None]:
        """The request's session, and a cookie to set when one was issued just now."""
        session = self.sessions.read(request.cookies.get(COOKIE))
        if session is not None:
            return session, None
        if self.sessions.open:
            issued, cookie = self.sessions.issue()
            return issued, cookie
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer ") and self.sessions.token_matches(bearer[7:]):
            # Scripts and benchmarks: pages only (an action's CSRF token needs a cookie).
            return self.sessions.issue()[0], None
        return None, None

    def _unauthenticated(self, request: Request) -> Response:
        if request.method == "GET" and "hx-request" not in request.headers:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)
        return plain("unauthorized: log in with the admin token", 401)

    def _set_cookie(self, response: Response, request: Request, value: str) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.sessions.lifetime_seconds,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    # login -----------------------------------------------------------------------------

    async def _login_form(self, request: Request) -> Response:
        if self.sessions.open:
            return secure(RedirectResponse(f"{PREFIX}/", status_code=303))
        return secure(self._login_page(request, next_path=request.query_params.get("next")))

    async def _login(self, request: Request) -> Response:
        if self.sessions.open:
            return secure(RedirectResponse(f"{PREFIX}/", status_code=303))
        form = await read_form(request)
        next_path = form.get("next", [""])[0]
        if not self.sessions.token_matches(form.get("token", [""])[0]):
            log.warning("console: a login with a wrong token")
            page = self._login_page(request, next_path=next_path, failed=True)
            return secure(page)
        _, cookie = self.sessions.issue()
        response = RedirectResponse(safe_next(next_path), status_code=303)
        self._set_cookie(response, request, cookie)
        return secure(response)

    def _login_page(
        self, request: Request, *, next_path: str | None, failed: bool = False
    ) -> Response:
        body = self.templates.get_template("login.html").render(
            next_path=safe_next(next_path), failed=failed, path=request.url.path
        )
        return HTMLResponse(body, status_code=401 if failed else 200)
