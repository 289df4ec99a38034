"""The events API client: rate limits and Retry-After honoured, bounded retries with backoff,
a clear error for wrong credentials, over real HTTP to a loopback fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payhook.backfill.errors import CredentialsError, ProviderApiError
from payhook.backfill.http import JsonApi, RetryPolicy, retry_after_seconds
from tests.backfill.fakes import Answer, FakeApi, Seen, serving


class Echo(FakeApi):
    def answer(self, request: Seen) -> Answer:
        return Answer(200, {"path": request.path, "query": request.query})


@pytest.fixture
def echo() -> Iterator[tuple[Echo, str]]:
    api = Echo()
    with serving(api) as base:
        yield api, base


def client(base: str, waits: list[float], attempts: int = 4) -> JsonApi:
    policy = RetryPolicy(attempts=attempts, base_seconds=0.5, cap_seconds=30)
    return JsonApi("acme", base, policy=policy, sleep=waits.append)


def test_waits_as_long_as_retry_after_asks_then_succeeds(echo: tuple[Echo, str]) -> None:
    api, base = echo
    api.failures = [Answer(429, {}, {"retry-after": "7"}), Answer(429, {}, {"retry-after": "2"})]
    waits: list[float] = []
    answer = client(base, waits).call("GET", "/events", headers={}, params={"a": "1"})
    assert answer == {"path": "/events", "query": {"a": "1"}}
    assert waits == [7.0, 2.0]
    assert len(api.seen) == 3


def test_server_errors_back_off_exponentially_and_give_up_after_the_bound(
    echo: tuple[Echo, str],
) -> None:
    api, base = echo
    api.failures = [Answer(503, {}) for _ in range(10)]
    waits: list[float] = []
    with pytest.raises(ProviderApiError, match=r"acme: .*HTTP 503.* after 4 attempts"):
        client(base, waits).call("GET", "/events", headers={})
    assert waits == [0.5, 1.0, 2.0]
    assert len(api.seen) == 4


def test_a_retry_after_beyond_the_cap_waits_the_cap(echo: tuple[Echo, str]) -> None:
    api, base = echo
    api.failures = [Answer(429, {}, {"retry-after": "86400"})]
    waits: list[float] = []
    client(base, waits).call("GET", "/events", headers={})
    assert waits == [30.0]


@pytest.mark.parametrize("status", [401, 403])
def test_wrong_credentials_fail_at_once_naming_the_provider(
    echo: tuple[Echo, str], status: int
) -> None:
    api, base = echo
    api.failures = [Answer(status, {"error": "nope"})]
    waits: list[float] = []
    with pytest.raises(CredentialsError, match=f"acme: .*refused the credentials.*{status}"):
        client(base, waits).call("GET", "/events", headers={"authorization": "Bearer sk_secret"})
    assert waits == []
    assert len(api.seen) == 1


def test_another_client_error_is_not_retried(echo: tuple[Echo, str]) -> None:
    api, base = echo
    api.failures = [Answer(400, {})]
    with pytest.raises(ProviderApiError, match="HTTP 400"):
        client(base, []).call("GET", "/events", headers={})
    assert len(api.seen) == 1


def test_an_unreachable_api_is_retried_then_reported() -> None:
    waits: list[float] = []
    with pytest.raises(ProviderApiError, match="ConnectError"):
        client("http://127.0.0.1:9", waits, attempts=2).call("GET", "/events", headers={})
    assert waits == [0.5]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("12", now=0) == 12.0
    assert retry_after_seconds("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0
    assert retry_after_seconds("soon", now=0) is None
    assert retry_after_seconds(None, now=0) is None
