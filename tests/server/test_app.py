"""The webhook endpoint on raw ASGI messages, driven in-process against a real SQLite runtime."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from payhook.providers.braintree import braintree_signature
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.server.app import create_app
from tests.conftest import count_rows, running_runtime

SECRET = "whsec_app_tests_secret"
BT_PRIVATE = "bt_private_key_0123456789"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[EmbeddedRuntime]:
    with running_runtime(
        tmp_path,
        server={"workers": 0, "body_limit_bytes": 4096},
        providers={
            "stripe": {"secrets": [SECRET]},
            "adyen": {"secrets": ["00112233445566778899aabbccddeeff"]},
            "braintree": {"secrets": [BT_PRIVATE], "public_key": "bt_public"},
        },
    ) as rt:
        yield rt


class Answer:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = messages[0]
        self.status: int = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        self.body: bytes = b"".join(m.get("body", b"") for m in messages[1:])

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    runtime: EmbeddedRuntime,
    method: str,
    path: str,
    *,
    chunks: tuple[bytes, ...] = (b"",),
    headers: dict[str, str] | None = None,
    query: bytes = b"",
    disconnect: bool = False,
) -> list[dict[str, Any]]:
    """One request through the whole app; returns the ASGI messages it sent."""
    app = create_app(runtime)
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": raw_headers,
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        incoming = [*incoming[:-1], {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def request(runtime: EmbeddedRuntime, method: str, path: str, **kwargs: Any) -> Answer:
    return Answer(call(runtime, method, path, **kwargs))


def stored(runtime: EmbeddedRuntime) -> int:
    return count_rows(runtime.path, "webhooks")


def signed_stripe(runtime: EmbeddedRuntime) -> tuple[bytes, dict[str, str]]:
    sample = runtime.providers["stripe"].sample_request("payment_intent.succeeded")
    return sample.body, sample.headers


def test_a_body_in_several_chunks_is_verified_whole_and_stored_once(
    runtime: EmbeddedRuntime,
) -> None:
    body, headers = signed_stripe(runtime)
    thirds = (body[:100], body[100:200], body[200:])
    answer = request(runtime, "POST", "/webhook/stripe", chunks=thirds, headers=headers)
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert answer.json()["duplicate"] is False
    again = request(runtime, "POST", "/webhook/stripe", chunks=(body,), headers=headers)
    assert again.json()["duplicate"] is True
    assert stored(runtime) == 1


def test_a_client_gone_before_its_body_ends_gets_no_answer_and_nothing_is_stored(
    runtime: EmbeddedRuntime,
) -> None:
    body, headers = signed_stripe(runtime)
    messages = call(
        runtime,
        "POST",
        "/webhook/stripe",
        chunks=(body[:50], body[50:]),
        headers=headers,
        disconnect=True,
    )
    assert messages == []
    assert stored(runtime) == 0


def test_a_body_over_the_limit_in_chunks_gets_413_without_a_declared_length(
    runtime: EmbeddedRuntime,
) -> None:
    body, headers = signed_stripe(runtime)
    chunks = (body, b" " * 4096)
    answer = request(runtime, "POST", "/webhook/stripe", chunks=chunks, headers=headers)
    assert answer.status == 413
    assert answer.json() == {"error": "body_too_large", "reason": "the body limit is 4096 bytes"}
    assert stored(runtime) == 0


def test_a_declared_length_over_the_limit_gets_413_before_the_body_is_read(
    runtime: EmbeddedRuntime,
) -> None:
    answer = request(
        runtime, "POST", "/webhook/stripe", headers={"content-length": "5000"}, chunks=()
    )
    assert answer.status == 413


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_naming_get_and_post(runtime: EmbeddedRuntime, method: str) -> None:
    answer = request(runtime, method, "/webhook/stripe")
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, POST"
    assert answer.json()["error"] == "method_not_allowed"


def test_get_without_a_challenge_is_405(runtime: EmbeddedRuntime) -> None:
    assert request(runtime, "GET", "/webhook/stripe").status == 405


def test_unknown_provider_is_404_for_every_method(runtime: EmbeddedRuntime) -> None:
    for method in ("POST", "GET"):
        answer = request(runtime, method, "/webhook/nope")
        assert answer.status == 404
        assert answer.json()["reason"] == "no provider named 'nope' is configured"


def test_braintree_challenge_reads_the_query_and_answers_text(runtime: EmbeddedRuntime) -> None:
    challenge = "0123456789abcdef0123"
    # The last value of a repeated key counts, as with Starlette's query_params.
    query = f"bt_challenge=ffff&bt_challenge={challenge}&empty=".encode()
    answer = request(runtime, "GET", "/webhook/braintree", query=query)
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    expected = f"bt_public|{braintree_signature(BT_PRIVATE, challenge.encode())}"
    assert answer.body == expected.encode()


def test_a_tampered_delivery_gets_401_with_the_reason_and_stores_nothing(
    runtime: EmbeddedRuntime,
) -> None:
    body, headers = signed_stripe(runtime)
    answer = request(runtime, "POST", "/webhook/stripe", chunks=(body + b" ",), headers=headers)
    assert answer.status == 401
    assert answer.json()["error"] == "verification_failed"
    assert stored(runtime) == 0


def test_adyen_gets_its_plain_text_acknowledgment(runtime: EmbeddedRuntime) -> None:
    sample = runtime.providers["adyen"].sample_request("AUTHORISATION")
    answer = request(
        runtime, "POST", "/webhook/adyen", chunks=(sample.body,), headers=sample.headers
    )
    assert answer.status == 200
    assert answer.body == b"[accepted]"
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"


def test_storage_unavailable_is_503_with_retry_after(runtime: EmbeddedRuntime) -> None:
    body, headers = signed_stripe(runtime)
    runtime.writer.stop()  # the writer is gone: nothing can be made durable
    answer = request(runtime, "POST", "/webhook/stripe", chunks=(body,), headers=headers)
    assert answer.status == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["error"] == "storage_unavailable"


def test_a_trailing_slash_is_not_found_rather_than_redirected(runtime: EmbeddedRuntime) -> None:
    body, headers = signed_stripe(runtime)
    answer = request(runtime, "POST", "/webhook/stripe/", chunks=(body,), headers=headers)
    assert answer.status == 404
    assert stored(runtime) == 0
