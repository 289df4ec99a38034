"""Who may see and change what, over HTTP against the same real payhook: the login, the
session cookie, CSRF on actions, the open console on loopback, and what pages never show."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from payhook.backends.sqlite.reader import SqliteReader
from payhook.console import OPEN_PATHS, Console
from payhook.server.admin import create_admin_app
from tests.conftest import AUDIT_TEST_KEY
from tests.console.conftest import REFUNDED
from tests.console.server import (
    ADMIN_TOKEN,
    STRIPE_SECRET,
    Listener,
    Payhook,
    csrf_of,
    settings_for,
)


def dead_letter_ids(payhook: Payhook) -> list[str]:
    reader = SqliteReader(payhook.settings.storage.path)
    try:
        return [d.webhook_id for d in reader.dead_letters()]
    finally:
        reader.close()


def test_without_a_session_pages_redirect_to_the_login_and_the_rest_get_401(
    payhook: Payhook,
) -> None:
    with httpx.Client(base_url=payhook.admin.url) as anonymous:
        page = anonymous.get("/console/deliveries?provider=stripe")
        assert page.status_code == 303
        assert (
            page.headers["location"]
            == "/console/login?next=/console/deliveries%3Fprovider%3Dstripe"
        )
        assert (
            anonymous.get("/console/deliveries/live", headers={"hx-request": "true"}).status_code
            == 401
        )
        assert (
            anonymous.post("/console/dead-letters/redrive", data={"scope": "matching"}).status_code
            == 401
        )
    forged_cookie = {"payhook_console": "9999999999.abc." + "0" * 64}
    with httpx.Client(base_url=payhook.admin.url, cookies=forged_cookie) as forged:
        assert forged.get("/console/").status_code == 303
        assert forged.get("/metrics").status_code == 401  # the rest of the admin listener


def test_the_bearer_token_reads_pages_without_a_session(payhook: Payhook) -> None:
    answer = httpx.get(
        f"{payhook.console_url}/deliveries", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers


def test_a_wrong_token_is_refused_and_the_session_cookie_is_strict(payhook: Payhook) -> None:
    with httpx.Client(base_url=payhook.admin.url) as anonymous:
        wrong = anonymous.post("/console/login", data={"token": "x" * 40})
        assert wrong.status_code == 401
        assert "payhook_console" not in wrong.headers.get("set-cookie", "")
        right = anonymous.post("/console/login", data={"token": ADMIN_TOKEN, "next": "//evil"})
    assert right.status_code == 303
    assert right.headers["location"] == "/console/"  # never redirected off the console
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert ADMIN_TOKEN not in cookie


def test_an_action_without_the_csrf_token_is_refused(
    payhook: Payhook, client: httpx.Client
) -> None:
    target = payhook.dead_letter_ids[1]
    form = {"ids": target, "confirm": "yes", "scope": "selected"}

    assert client.post("/console/dead-letters/redrive", data=form).status_code == 403
    wrong = {**form, "csrf": "0" * 64}
    assert client.post("/console/dead-letters/redrive", data=wrong).status_code == 403
    assert target in dead_letter_ids(payhook)  # nothing changed

    token = csrf_of(client.get("/console/dead-letters").text)
    done = client.post("/console/dead-letters/redrive", data={**form, "csrf": token})
    assert done.status_code == 200
    assert target not in dead_letter_ids(payhook)


def test_pages_never_show_secrets_and_send_security_headers(
    payhook: Payhook, client: httpx.Client
) -> None:
    pages = ["/", "/deliveries", "/payments", f"/payments/stripe/{REFUNDED}", "/dead-letters"]
    for path in pages:
        answer = client.get(f"/console{path}")
        assert answer.status_code == 200, path
        for secret in (ADMIN_TOKEN, STRIPE_SECRET, AUDIT_TEST_KEY):
            assert secret not in answer.text, path
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"


def test_the_payload_is_served_only_on_its_own_request(
    payhook: Payhook, client: httpx.Client
) -> None:
    webhook_id = payhook.dead_letter_ids[0]
    page = client.get(f"/console/deliveries/{webhook_id}").text
    assert "pi_console_dead_browser" not in page.split('id="payload"')[1]
    payload = client.get(f"/console/deliveries/{webhook_id}/payload").text
    assert "pi_console_dead_browser" in payload


@pytest.fixture
def open_console(payhook: Payhook) -> Iterator[Listener]:
    """The console of the same runtime with no admin token (the listener on loopback)."""

    class Untokened:
        settings = settings_for(Path(payhook.settings.storage.path).parent, token=None)
        writer = payhook.runtime.writer
        providers = payhook.runtime.providers
        metrics = payhook.runtime.metrics
        figures = staticmethod(payhook.runtime.figures)

    console = Console(Untokened())
    listener = Listener(
        create_admin_app(Untokened(), extra_routes=console.routes(), open_paths=OPEN_PATHS)
    )
    try:
        yield listener
    finally:
        listener.stop()


def test_with_no_token_on_loopback_the_console_is_open_and_says_so(open_console: Listener) -> None:
    with httpx.Client(base_url=open_console.url) as local:
        page = local.get("/console/")
        assert page.status_code == 200
        assert "Open console: no admin token is configured" in page.text
        assert local.get("/console/login").status_code == 303
        # Its actions still need the CSRF token of the session it was given.
        no_csrf = local.post("/console/audit/verify")
        assert no_csrf.status_code == 403
        ran = local.post("/console/audit/verify", data={"csrf": csrf_of(page.text)})
        assert ran.status_code == 303
        rebound = local.get("/console/", headers={"host": "attacker.example:8081"})
        assert rebound.status_code == 403


def test_a_delivery_shows_its_request_headers_with_signature_values_masked(
    payhook: Payhook, client: httpx.Client
) -> None:
    webhook_id = payhook.deliver_sample("stripe")
    reader = SqliteReader(payhook.settings.storage.path)
    try:
        stored = reader.webhook(webhook_id)
    finally:
        reader.close()
    assert stored is not None
    assert stored.headers is not None
    signature = json.loads(stored.headers)["stripe-signature"]
    assert signature.startswith("t=")
    page = client.get(f"/console/deliveries/{webhook_id}").text
    table = page.split('id="headers"')[1].split("</table>")[0]
    assert "stripe-signature" in table
    assert f"masked ({len(signature)} characters)" in table
    assert signature not in page
    assert signature.split("v1=")[1] not in page
    assert "content-type" in table
