"""The console's request guards: which hosts the open console answers, where a login may
redirect, reading a form, and the security headers of every answer."""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from payhook.console.call import PREFIX

#: A form is a few ids and filters; a selection of every dead letter stays far below this.
MAX_FORM_BYTES = 1024 * 1024
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self';"
    " script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
_LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    name = host.strip("[]")
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without its port (``[::1]:8081`` is ``::1``)."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0]


def safe_next(next_path: str | None) -> str:
    """Only a console path: a login never redirects elsewhere."""
    if next_path and next_path.startswith(f"{PREFIX}/") and "//" not in next_path:
        return next_path
    return f"{PREFIX}/"


async def read_form(request: Request) -> dict[str, list[str]]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def plain(text: str, status: int) -> Response:
    return PlainTextResponse(text, status_code=status)


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
