"""Hostile input against the running server: real HTTP, every provider, hypothesis-driven.

Each example starts from an authentic delivery and mangles it (one signature character,
another provider's delivery, several signatures, replayed or future timestamps, truncated,
padded or oversized bodies, odd content types and headers, random paths and methods), or
breaks the HTTP framing itself over a raw socket. Invariants after every request: no 5xx, the
server stays up, and the webhook table grows only by deliveries that verify (re-checked in
this process with the same providers as the server sees the request).
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payhook.core.model import WebhookRequest
from payhook.errors import PayhookError
from payhook.providers import Provider
from payhook.service.ingest import Ingest
from tests.reliability import fleet
from tests.reliability.conftest import soak_scale
from tests.reliability.server import ReliabilityServer

pytestmark = pytest.mark.e2e

BODY_LIMIT = 64 * 1024
# Providers that sign a timestamp and reject stale or future ones.
TIMESTAMPED = {"stripe", "standard", "polar", "paddle", "generic"}
SHIFT_SECONDS = 3600
MUST_REJECT = {
    "signature_char",
    "other_provider",
    "drop_signature",
    "truncate_body",
    "append_body",
    "random_body",
    "garbage_signature",
}
MUST_ACCEPT = {"valid", "extra_signatures", "junk_headers", "replay_same"}
# Adyen signs fields of each item and Braintree the bt_payload field, not the raw body:
# JSON whitespace or another form field appended still verifies, as their SDKs agree.
FIELD_SIGNED = {"adyen", "braintree"}


@dataclass
class Harness:
    """The fuzz server, a client, and what has legitimately been stored so far."""

    server: ReliabilityServer
    client: httpx.Client
    providers: dict[int, dict[str, Provider]] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)  # ids of deliveries answered 200
    authentic: set[str] = field(default_factory=set)  # ids of authentic raw deliveries sent
    statuses: Counter[int | None] = field(default_factory=Counter)
    requests: int = 0

    def signers(self, shift: int = 0) -> dict[str, Provider]:
        """The server's providers in this process, with their clock shifted by ``shift`` s."""
        if shift not in self.providers:
            sections = self.server.sections()
            self.providers[shift] = fleet.build(sections, lambda: time.time() + shift)
        return self.providers[shift]

    def stored(self) -> int:
        conn = sqlite3.connect(self.server.db)
        try:
            return int(conn.execute("SELECT count(*) FROM webhooks").fetchone()[0])
        finally:
            conn.close()

    def stored_ids(self) -> set[str]:
        conn = sqlite3.connect(self.server.db)
        try:
            return {row[0] for row in conn.execute("SELECT webhook_id FROM webhooks")}
        finally:
            conn.close()

    def expect_ids(self, name: str, headers: list[tuple[str, str]], body: bytes) -> set[str]:
        """Ids the server may store for this request: verified here as the server sees it."""
        seen: dict[str, str] = {}
        for key, value in headers:
            seen.setdefault(key.lower(), value)  # the server keeps the first of a repeat
        try:
            webhooks = Ingest(self.signers()).verify(name, WebhookRequest(body, seen))
        except PayhookError:
            return set()
        return {w.webhook_id for w in webhooks}


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    server = ReliabilityServer(
        tmp_path_factory.mktemp("fuzz"), body_limit=BODY_LIMIT, tolerance=None
    )
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            h = Harness(server, client)
            yield h
        assert server.alive(), "the server died during fuzzing"
        _assert_only_verified_stored(h)
    finally:
        if server.process is not None:
            server.stop()


# strategies -----------------------------------------------------------------------------------

MUTATIONS = [
    "valid",
    "signature_char",
    "other_provider",
    "extra_signatures",
    "duplicate_signature",
    "drop_signature",
    "replayed_timestamp",
    "future_timestamp",
    "truncate_body",
    "append_body",
    "huge_body",
    "random_body",
    "content_type",
    "junk_headers",
    "garbage_signature",
    "random_path",
    "other_method",
    "replay_same",
]
# httpx sends header values as ASCII; other bytes go through the raw-socket cases below.
# (h11 refuses surrounding whitespace too, so values are stripped.)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(
    str.strip
)
header_names = st.from_regex(r"x-fuzz-[a-z0-9-]{1,20}", fullmatch=True)


@dataclass(frozen=True)
class Case:
    mutation: str
    provider: str
    target: str  # the path segment the request goes to
    method: str
    headers: list[tuple[str, str]]
    body: bytes


def _signature_header(request: WebhookRequest) -> str | None:
    for name in request.headers:
        if "sig" in name or "hmac" in name:
            return name
    return None  # Adyen and Braintree sign inside the body


def _flip(text: str, position: int) -> str:
    old = text[position]
    for candidate in "0aA+Zz9/_b":
        if candidate.lower() != old.lower():
            return text[:position] + candidate + text[position + 1 :]
    raise AssertionError("unreachable")


def _extra_signature(provider: str, value: str) -> str | None:
    if provider == "stripe":
        return value.replace("v1=", "v1=" + "0" * 64 + ",v1=", 1)
    if provider in ("standard", "polar"):
        return "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " + value
    if provider == "paddle":
        return value.replace("h1=", "h1=" + "0" * 64 + ";h1=", 1)
    return None


@st.composite
def cases(draw: st.DrawFn, harness: Harness) -> Case:
    mutation = draw(st.sampled_from(MUTATIONS))
    names = sorted(harness.signers())
    name = draw(st.sampled_from(names))
    shift = {"replayed_timestamp": -SHIFT_SECONDS, "future_timestamp": SHIFT_SECONDS}.get(
        mutation, 0
    )
    provider = harness.signers(shift)[name]
    event_types = provider.sample_event_types or (None,)
    request = provider.sample_request(draw(st.sampled_from(event_types)))
    headers = list(request.headers.items())
    body = request.body
    target, method = name, "POST"
    signature = _signature_header(request)
    # Samples differ in length from run to run: draw offsets, never ranges made of lengths.
    offset = draw(st.integers(0, 39))
    if mutation == "signature_char":
        if signature is None:
            start = body.find(b"ignature") + 12  # hmacSignature / bt_signature, in the body
            index = min(len(body) - 1, start + offset)
            body = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        else:
            value = request.headers[signature]
            position = max(0, len(value) - 1 - offset)  # the MAC is at the end of the value
            headers = [(k, _flip(v, position) if k == signature else v) for k, v in headers]
    elif mutation == "other_provider":
        target = draw(st.sampled_from([n for n in names if n != name]))
    elif mutation == "extra_signatures" and signature is not None:
        extra = _extra_signature(name, request.headers[signature])
        if extra is None:
            mutation = "valid"
        else:
            headers = [(k, extra if k == signature else v) for k, v in headers]
    elif mutation == "duplicate_signature" and signature is not None:
        junk = draw(header_text)
        both = [(signature, junk), (signature, request.headers[signature])]
        headers = [(k, v) for k, v in headers if k != signature] + draw(st.permutations(both))
    elif mutation == "drop_signature":
        if signature is None:
            mutation = "truncate_body"
        headers = [(k, v) for k, v in headers if k != signature]
    elif mutation == "garbage_signature":
        if signature is None:
            mutation = "random_body"
        headers = [(k, draw(header_text) if k == signature else v) for k, v in headers]
    elif mutation == "content_type":
        kind = draw(
            st.sampled_from(
                ["text/plain", "application/xml", "multipart/form-data; boundary=x", "", "a/b;;"]
            )
        )
        headers = [(k, v) for k, v in headers if k != "content-type"] + [("content-type", kind)]
    elif mutation == "junk_headers":
        headers += draw(st.lists(st.tuples(header_names, header_text), min_size=1, max_size=8))
    elif mutation == "random_path":
        target = quote(draw(st.text(min_size=1, max_size=30)), safe="")
    elif mutation == "other_method":
        method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    share = draw(st.integers(0, 999))
    if mutation == "truncate_body":
        body = body[: len(body) * share // 1000]
    elif mutation == "append_body":
        body += draw(st.binary(min_size=1, max_size=64))
    elif mutation == "huge_body":
        body += b" " * (BODY_LIMIT + draw(st.integers(1, 4096)) - len(body))
    elif mutation == "random_body":
        body = draw(st.binary(max_size=2048))
        body = body + b"x" if body == request.body else body
    return Case(mutation, name, target, method, headers, body)


# the properties -----------------------------------------------------------------------------


def _send(harness: Harness, case: Case) -> int:
    response = harness.client.request(
        case.method, f"/webhook/{case.target}", content=case.body, headers=case.headers
    )
    harness.requests += 1
    harness.statuses[response.status_code] += 1
    return response.status_code


def _check(harness: Harness, case: Case) -> None:
    before = harness.stored()
    status = _send(harness, case)
    if case.mutation == "replay_same":
        assert status == 200
        status = _send(harness, case)
    assert status < 500, f"{case.mutation} to {case.target}: {status}"
    if status == 200:
        expected = harness.expect_ids(case.target, case.headers, case.body)
        assert expected, f"{case.mutation}: the server accepted what does not verify here"
        harness.accepted |= expected
    assert harness.stored() == len(harness.accepted), f"{case.mutation}: stored without a 200"
    body_signed = case.provider not in FIELD_SIGNED
    if case.mutation in MUST_REJECT and (case.mutation != "append_body" or body_signed):
        assert status != 200, f"{case.mutation} to {case.target} was accepted"
        assert harness.stored() == before
    if case.mutation in MUST_ACCEPT:
        assert status == 200, f"{case.mutation} to {case.target}: {status}"
    if case.mutation in ("replayed_timestamp", "future_timestamp") and case.provider in TIMESTAMPED:
        assert status in (401, 498), f"{case.mutation} to {case.target}: {status}"
    if case.mutation == "huge_body":
        assert status == 413
    if case.mutation == "random_path" and case.target not in harness.signers():
        # An encoded "/" makes another path, which is not found either (never a redirect).
        assert status == 404, f"{case.target}: {status}"


def _fuzz(harness: Harness, examples: int) -> Callable[[], None]:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        _check(harness, data.draw(cases(harness)))

    return run


def _figures(harness: Harness, requests: int, statuses: Counter[int | None]) -> dict[str, Any]:
    new = harness.statuses - statuses
    return {
        "requests": harness.requests - requests,
        "statuses": {str(k): v for k, v in new.items()},
    }


def test_hostile_deliveries_get_no_5xx_and_store_only_what_verifies(
    harness: Harness, record_figures: Callable[..., None]
) -> None:
    requests, statuses = harness.requests, Counter(harness.statuses)
    _fuzz(harness, 250)()
    assert harness.statuses[200] > 0
    assert harness.statuses[401] > 0
    record_figures(**_figures(harness, requests, statuses))


@pytest.mark.soak
@pytest.mark.timeout(7200)
def test_soak_hostile_deliveries(harness: Harness, record_figures: Callable[..., None]) -> None:
    requests, statuses = harness.requests, Counter(harness.statuses)
    _fuzz(harness, int(30_000 * soak_scale()))()
    record_figures(**_figures(harness, requests, statuses))


# broken HTTP framing over a raw socket --------------------------------------------------------


@dataclass(frozen=True)
class RawCase:
    kind: str
    data: bytes
    half_close: bool
    origin_ids: frozenset[str]  # what the untouched delivery would store


def _request_head(path: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@st.composite
def raw_cases(draw: st.DrawFn, harness: Harness) -> RawCase:
    name = draw(st.sampled_from(sorted(harness.signers())))
    request = harness.signers()[name].sample_request()
    body = request.body
    path = f"/webhook/{name}"
    headers = list(request.headers.items())
    kind = draw(
        st.sampled_from(
            [
                "short_body",
                "two_lengths",
                "bad_chunks",
                "header_without_colon",
                "control_chars",
                "huge_header",
                "garbage",
                "length_not_a_number",
                "length_and_chunked",
            ]
        )
    )
    length = [("Content-Length", str(len(body)))]
    share = draw(st.integers(0, 999))
    if kind == "short_body":
        data = _request_head(path, headers + length) + body[: len(body) * share // 1000]
    elif kind == "two_lengths":
        other = str(len(body) + draw(st.integers(1, 50)))
        data = _request_head(path, [*headers, *length, ("Content-Length", other)]) + body
    elif kind == "bad_chunks":
        chunk = draw(st.sampled_from([b"zz\r\n", b"5\r\nab\r\n", b"-1\r\n", b"ffffffffff\r\n"]))
        data = _request_head(path, [*headers, ("Transfer-Encoding", "chunked")]) + chunk
    elif kind == "header_without_colon":
        data = _request_head(path, [*headers, *length]).replace(
            b"\r\n\r\n", b"\r\nno colon here\r\n\r\n", 1
        )
        data += body
    elif kind == "control_chars":
        junk = draw(st.binary(min_size=1, max_size=20).filter(lambda b: b"\r\n" not in b))
        data = _request_head(path, [*headers, *length])[:-4] + b"\r\nX-Bad: " + junk + b"\r\n\r\n"
        data += body
    elif kind == "huge_header":
        size = draw(st.integers(64 * 1024, 256 * 1024))
        data = _request_head(path, [*headers, *length, ("X-Huge", "a" * size)]) + body
    elif kind == "length_not_a_number":
        value = draw(st.sampled_from(["-1", "1e3", "0x10", " ", "99999999999999999999"]))
        data = _request_head(path, [*headers, ("Content-Length", value)]) + body
    elif kind == "length_and_chunked":
        data = _request_head(path, [*headers, *length, ("Transfer-Encoding", "chunked")]) + body
    else:
        data = draw(st.binary(min_size=1, max_size=512))
    origin = harness.expect_ids(name, headers, body)
    return RawCase(kind, data, draw(st.booleans()), frozenset(origin))


def _raw_exchange(port: int, case: RawCase) -> int | None:
    """Send raw bytes; the status of the answer, or None if the server just closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendall(case.data)
            if case.half_close:
                # The server may have answered and closed already (a 431 to an oversized
                # head): then there is nothing to shut, and its answer is still readable.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
            answer = sock.recv(64)
        except (TimeoutError, ConnectionError):
            return None  # waiting for bytes that never come, or reset: no answer is fine
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


def _raw_fuzz(harness: Harness, examples: int) -> Callable[[], None]:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(raw_cases(harness))
        status = _raw_exchange(harness.server.port, case)
        harness.requests += 1
        harness.statuses[status] += 1
        assert status is None or status < 500, f"{case.kind}: {status}"
        # A client that half-closes may never read the 200 of a request that was stored:
        # what matters is that only authentic deliveries are ever stored.
        harness.authentic |= case.origin_ids
        if status == 200:
            harness.accepted |= case.origin_ids
        foreign = harness.stored_ids() - harness.accepted - harness.authentic
        assert not foreign, f"{case.kind}: stored what was never sent authentic: {foreign}"
        assert harness.server.alive()

    return run


def test_broken_http_framing_gets_no_5xx_and_stores_only_authentic_deliveries(
    harness: Harness, record_figures: Callable[..., None]
) -> None:
    requests, statuses = harness.requests, Counter(harness.statuses)
    _raw_fuzz(harness, 60)()
    assert harness.client.get("/healthz").status_code == 200
    record_figures(**_figures(harness, requests, statuses))


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_broken_http_framing(harness: Harness, record_figures: Callable[..., None]) -> None:
    requests, statuses = harness.requests, Counter(harness.statuses)
    _raw_fuzz(harness, int(3000 * soak_scale()))()
    assert harness.client.get("/healthz").status_code == 200
    record_figures(**_figures(harness, requests, statuses))


def test_a_405_names_the_allowed_methods(harness: Harness) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = harness.client.request(method, "/webhook/stripe")
        assert response.status_code == 405
        assert "POST" in response.headers.get("allow", ""), method


def _assert_only_verified_stored(harness: Harness) -> None:
    stored = harness.stored_ids()
    assert harness.accepted <= stored, "a delivery answered 200 is not stored"
    assert stored <= harness.accepted | harness.authentic, "stored what does not verify"


def test_the_fuzzed_server_kept_exactly_the_verified_webhooks(harness: Harness) -> None:
    """Runs last in this module: every 200 is stored, and nothing unverified is."""
    _assert_only_verified_stored(harness)
    assert harness.client.get("/healthz").status_code == 200
