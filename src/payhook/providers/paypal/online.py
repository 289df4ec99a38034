"""Online verification: PayPal's ``POST /v1/notifications/verify-webhook-signature``.

The same local checks run first (see the provider); then PayPal is asked, with an OAuth token
from the client credentials in the secrets (``"client_id:client_secret"``, several during a
rotation). The raw body is embedded verbatim as ``webhook_event``: re-serialising it could
change the bytes PayPal's CRC covers.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from payhook.core.clock import Clock
from payhook.errors import VerificationError
from payhook.providers.paypal.signature import Transmission

DEFAULT_API_BASE = "https://api-m.paypal.com"
API_TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes


class HttpClient(Protocol):
    """What online verification needs from an HTTP client (tests pass an in-memory fake)."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpResponse: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would send the credentials to a host the api_base check never approved.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _read_limited(response: Any, limit: int) -> bytes:
    data: bytes = response.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"response larger than {limit} bytes")
    return data


class UrllibHttpClient:
    """Default HTTP client for PayPal's REST API: timeout, size limit, no redirects."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        opener = urllib.request.build_opener(_NoRedirect)
        # api_base was checked at configuration: https on paypal.com.
        request = urllib.request.Request(  # noqa: S310
            url, data=body, headers=dict(headers), method="POST"
        )
        try:
            with opener.open(request, timeout=API_TIMEOUT_SECONDS) as response:
                return HttpResponse(response.status, _read_limited(response, MAX_ANSWER_BYTES))
        except urllib.error.HTTPError as exc:
            return HttpResponse(exc.code, _read_limited(exc, MAX_ANSWER_BYTES))


class PayPalOnlineVerifier:
    """``POST /v1/notifications/verify-webhook-signature`` with a cached OAuth token."""

    def __init__(
        self, http: HttpClient, api_base: str, credentials: list[tuple[str, str]], clock: Clock
    ) -> None:
        self.http = http
        self.api_base = api_base.rstrip("/")
        self.credentials = credentials
        self.clock = clock
        self._token: tuple[str, float] | None = None

    def verify(self, transmission: Transmission, webhook_ids: tuple[str, ...], body: bytes) -> None:
        try:
            json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VerificationError("body is not JSON, so PayPal cannot verify it") from exc
        for webhook_id in webhook_ids:
            if self._status(transmission, webhook_id, body) == "SUCCESS":
                return
        raise VerificationError("PayPal reports the signature as not verified", code="mismatch")

    def _status(self, transmission: Transmission, webhook_id: str, body: bytes) -> str:
        fields = {
            "auth_algo": transmission.algorithm,
            "cert_url": transmission.cert_url,
            "transmission_id": transmission.transmission_id,
            "transmission_sig": transmission.signature_b64,
            "transmission_time": transmission.time,
            "webhook_id": webhook_id,
        }
        payload = json.dumps(fields)[:-1].encode() + b',"webhook_event":' + body + b"}"
        url = f"{self.api_base}/v1/notifications/verify-webhook-signature"
        response = self._post(url, payload, self._bearer())
        if response.status == 401:  # the token expired early or was revoked: one fresh token
            self._token = None
            response = self._post(url, payload, self._bearer())
        if response.status != 200:
            raise VerificationError(f"PayPal verification API answered HTTP {response.status}")
        status: str = _json_field(response.body, "verification_status")
        return status

    def _bearer(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._access_token()}",
            "Content-Type": "application/json",
        }

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
        try:
            return self.http.post(url, body, headers)
        except Exception as exc:  # transport failures: verification could not happen
            raise VerificationError("PayPal verification API is unreachable") from exc

    def _access_token(self) -> str:
        now = self.clock()
        if self._token is not None and self._token[1] > now:
            return self._token[0]
        for client_id, client_secret in self.credentials:
            basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
            response = self._post(
                f"{self.api_base}/v1/oauth2/token",
                b"grant_type=client_credentials",
                {
                    "Authorization": f"Basic {basic}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            if response.status != 200:
                continue  # next credentials (rotation)
            token: str = _json_field(response.body, "access_token")
            expires_in = _json_field(response.body, "expires_in", int)
            # Renew a minute early so a token never expires between check and use.
            self._token = (token, now + max(0, expires_in - 60))
            return token
        raise VerificationError("PayPal refused every configured client credential")


def _json_field(body: bytes, key: str, kind: type = str) -> Any:
    try:
        value = json.loads(body).get(key)
    except (ValueError, AttributeError) as exc:
        raise VerificationError("PayPal API answered with malformed JSON") from exc
    if not isinstance(value, kind) or isinstance(value, bool):
        raise VerificationError(f"PayPal API answer has no {key}")
    return value
