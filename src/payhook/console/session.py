"""Console sessions: a signed cookie after a login with the admin token, and a CSRF token
bound to the session.

The signing key derives from the admin token, so changing the token ends every session; with
no token (the open console on loopback) it is random per process. The cookie carries only an
expiry and a random nonce, never the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

#: The cookie's name; scoped to /console.
COOKIE = "payhook_console"
#: A session lasts a working day; the login form issues a new one.
SESSION_SECONDS = 12 * 3600
_KEY_LABEL = b"payhook console session v1"


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires: int


class Sessions:
    """Issues and checks session cookies and CSRF tokens; compares in constant time."""

    def __init__(
        self,
        token: str | None,
        clock: Callable[[], float],
        *,
        lifetime_seconds: int = SESSION_SECONDS,
    ) -> None:
        self._token = token.encode() if token is not None else None
        secret = self._token if self._token is not None else secrets.token_bytes(32)
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()
        self._clock = clock
        self.lifetime_seconds = lifetime_seconds

    @property
    def open(self) -> bool:
        """No admin token: nothing to log in with (loopback only, see ``Console``)."""
        return self._token is None

    def token_matches(self, given: str) -> bool:
        if self._token is None:
            return False
        return hmac.compare_digest(given.encode(), self._token)

    def issue(self) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(secrets.token_urlsafe(16), int(self._clock()) + self.lifetime_seconds)
        body = f"{session.expires}.{session.nonce}"
        return session, f"{body}.{self._mac('session', body)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None: missing, forged, malformed or expired."""
        if not cookie:
            return None
        body, _, mac = cookie.rpartition(".")
        expires, _, nonce = body.partition(".")
        if not (expires.isdigit() and nonce and mac):
            return None
        if not _same(mac, self._mac("session", body)):
            return None
        if int(expires) <= self._clock():
            return None
        return Session(nonce, int(expires))

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.nonce)

    def csrf_matches(self, session: Session, given: str | None) -> bool:
        return given is not None and _same(given, self.csrf(session))

    def _mac(self, purpose: str, text: str) -> str:
        message = f"{purpose}:{text}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of a client's string (any characters: compared as UTF-8 bytes,
    since ``compare_digest`` refuses non-ASCII str) with an expected one."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())
