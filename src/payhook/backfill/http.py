"""One JSON-over-HTTPS call with the provider's rate limits honoured.

429 and 5xx answers and transport errors are retried a bounded number of times, waiting what
``Retry-After`` asks (capped) or an exponential backoff; 401 and 403 are a ``CredentialsError``
naming the provider at once (retrying a wrong key only burns the rate limit). The sleep is
injected, so tests never sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from payhook.backfill.errors import CredentialsError, ProviderApiError

Sleep = Callable[[float], None]

DEFAULT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` tries per call; waits ``base * 2**n`` seconds, at most ``cap``."""

    attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 60.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.cap_seconds))
        return float(min(self.base_seconds * 2**attempt, self.cap_seconds))


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; None if unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        return parsedate_to_datetime(text).timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class JsonApi:
    """Calls one provider's API; ``provider`` names it in every error."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=DEFAULT_TIMEOUT_SECONDS)
        self.policy = policy or RetryPolicy()
        self.sleep = sleep

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """The decoded JSON object of a 2xx answer, after at most ``policy.attempts`` tries."""
        url = self.url(path)
        last = "no attempt"
        for attempt in range(self.policy.attempts):
            retry_after: float | None = None
            try:
                response = self.client.request(
                    method,
                    url,
                    headers=dict(headers),
                    params=params,
                    json=json,
                    data=data,
                    auth=auth,
                )
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            else:
                status = response.status_code
                if status in (401, 403):
                    raise CredentialsError(
                        f"{self.provider}: the events API refused the credentials (HTTP {status});"
                        f" check providers.{self.provider} api_key / client_id / client_secret"
                    )
                if 200 <= status < 300:
                    return self._decode(response)
                if status != 429 and status < 500:
                    raise ProviderApiError(
                        f"{self.provider}: the events API answered HTTP {status}"
                    )
                last = f"HTTP {status}"
                retry_after = retry_after_seconds(response.headers.get("retry-after"), time.time())
            if attempt + 1 < self.policy.attempts:
                self.sleep(self.policy.wait(attempt, retry_after))
        raise ProviderApiError(
            f"{self.provider}: the events API kept failing ({last}) after"
            f" {self.policy.attempts} attempts"
        )

    def _decode(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderApiError(f"{self.provider}: the events API sent no JSON") from exc
        if not isinstance(data, dict):
            raise ProviderApiError(f"{self.provider}: the events API sent no JSON object")
        return data
