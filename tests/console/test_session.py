"""Console sessions: signed, expiring, bound to the admin token; CSRF tokens bound to them."""

from __future__ import annotations

from payhook.console.session import Sessions
from tests.conftest import FakeClock

TOKEN = "a-console-admin-token-of-32-characters"


def test_a_session_reads_back_until_it_expires() -> None:
    clock = FakeClock()
    sessions = Sessions(TOKEN, clock, lifetime_seconds=60)
    session, cookie = sessions.issue()
    assert sessions.read(cookie) == session
    clock.advance(60)
    assert sessions.read(cookie) is None


def test_a_forged_or_malformed_cookie_is_no_session() -> None:
    clock = FakeClock()
    sessions = Sessions(TOKEN, clock)
    _, cookie = sessions.issue()
    expires, nonce, mac = cookie.split(".")
    longer = f"{int(expires) + 10**6}.{nonce}.{mac}"
    non_ascii = f"{expires}.{nonce}.{mac[:-1]}é"  # compare_digest refuses non-ASCII str
    for forged in (longer, f"{expires}.other.{mac}", "garbage", "", "1.2", f"{cookie}0", non_ascii):
        assert sessions.read(forged) is None, forged
    # Another token signs other sessions: changing the token ends every session.
    assert Sessions(TOKEN + "-rotated", clock).read(cookie) is None


def test_the_csrf_token_belongs_to_one_session() -> None:
    sessions = Sessions(TOKEN, FakeClock())
    mine, _ = sessions.issue()
    theirs, _ = sessions.issue()
    assert sessions.csrf_matches(mine, sessions.csrf(mine))
    assert not sessions.csrf_matches(mine, sessions.csrf(theirs))
    assert not sessions.csrf_matches(mine, None)
    assert not sessions.csrf_matches(mine, "")
    assert not sessions.csrf_matches(mine, "é" * 43)


def test_without_a_token_nothing_logs_in() -> None:
    sessions = Sessions(None, FakeClock())
    assert sessions.open
    assert not sessions.token_matches("")
