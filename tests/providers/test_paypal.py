"""PayPal provider: known-answer vectors, every failure mode, online mode, payment events.

PayPal's private key is PayPal's, so deliveries are signed with a test CA and leaf
(tests/providers/paypal_pki.py). One vector is real: a delivery PayPal itself signed, verified
through DigiCert's chain exactly as in production.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from payhook.core.ledger import PaymentStatus, derive
from payhook.core.model import StoredWebhook, WebhookRequest
from payhook.core.payment import PaymentEventKind as K
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers import provider_class
from payhook.providers.base import ProviderConfig
from payhook.providers.paypal import (
    HttpResponse,
    PayPalProvider,
    PayPalSampleSigner,
    TrustStore,
    sign_paypal,
    signed_message,
)
from payhook.providers.samples import sample_bytes, sample_types
from tests.conftest import FakeClock, load_event, load_sample
from tests.providers.paypal_pki import (
    CERT_URL,
    NOW,
    NOW_ISO,
    WEBHOOK_ID,
    FakeFetcher,
    at,
    delivery,
    make_ca,
    make_leaf,
    pem,
    rsa_key,
)

CAPTURE_BODY = load_event("paypal", "vector-body.json")


def _config(**options: Any) -> ProviderConfig:
    section = {"type": "paypal", "webhook_id": WEBHOOK_ID, **options}
    return ProviderConfig.from_mapping("paypal", section)


def make_provider(
    clock: FakeClock | None = None, *, leaf: x509.Certificate | None = None, **options: Any
) -> tuple[PayPalProvider, FakeFetcher]:
    """A provider trusting the test CA, with ``leaf`` (default: a valid one) at CERT_URL."""
    ca = make_ca(rsa_key(0))
    leaf = leaf or make_leaf(ca, rsa_key(0), rsa_key(1))
    fetcher = FakeFetcher({CERT_URL: pem(leaf)})
    provider = PayPalProvider(
        _config(**options),
        clock or FakeClock(NOW),
        trust_store=TrustStore([ca]),
        fetcher=fetcher,
    )
    return provider, fetcher


# known answers ------------------------------------------------------------------------------


def test_registry_maps_paypal_to_this_provider() -> None:
    assert provider_class("paypal") is PayPalProvider
    assert PayPalProvider.provider_type == "paypal"


def test_known_vector_verifies_with_its_exact_signature() -> None:
    meta = json.loads(load_event("paypal", "vector-delivery.json"))
    headers = meta["headers"]
    # The signed string, CRC32 as an unsigned decimal (this body's CRC is above 2**31).
    message = signed_message(
        headers["paypal-transmission-id"],
        headers["paypal-transmission-time"],
        meta["webhook_id"],
        CAPTURE_BODY,
    )
    assert message.decode() == meta["signed_message"]
    key = load_pem_private_key(load_event("paypal", "vector-leaf-key.pem"), password=None)
    # PKCS#1 v1.5 is deterministic: the stored signature is the one this message gets.
    assert (
        sign_paypal(
            key,  # type: ignore[arg-type]
            headers["paypal-transmission-id"],
            headers["paypal-transmission-time"],
            meta["webhook_id"],
            CAPTURE_BODY,
        )
        == headers["paypal-transmission-sig"]
    )
    provider = PayPalProvider(
        _config(webhook_id=meta["webhook_id"]),
        FakeClock(meta["now"]),
        trust_store=TrustStore.from_pem(load_event("paypal", "vector-ca.pem")),
        fetcher=FakeFetcher({headers["paypal-cert-url"]: load_event("paypal", "vector-leaf.pem")}),
    )
    [event] = provider.verify(WebhookRequest(body=CAPTURE_BODY, headers=headers))
    assert event.event_id == "WH-58D329510W468432D-8HN650336L201105X"
    assert event.event_type == "PAYMENT.CAPTURE.COMPLETED"
    assert event.occurred_at == pytest.approx(1_699_999_997.94)
    assert event.payload == CAPTURE_BODY


def _real_delivery() -> tuple[dict[str, Any], bytes, FakeFetcher, TrustStore]:
    meta = json.loads(load_event("paypal", "real-delivery.json"))
    issuer = x509.load_pem_x509_certificate(load_event("paypal", "real-issuer.pem"))
    fetcher = FakeFetcher(
        {
            meta["headers"]["paypal-cert-url"]: load_event("paypal", "real-leaf.pem"),
            meta["issuer_url"]: issuer.public_bytes(Encoding.DER),  # DigiCert serves DER
        }
    )
    trust = TrustStore.from_pem(load_event("paypal", "real-root.pem"))
    return meta, load_event("paypal", "real-body.json"), fetcher, trust


def test_real_paypal_delivery_verifies_through_the_digicert_chain() -> None:
    # Signed by PayPal (2025-04-05, webhook 40L71081MK3756722) with its 2025 certificate;
    # PayPal serves the leaf alone, the issuer comes from the leaf's AIA URL.
    meta, body, fetcher, trust = _real_delivery()
    provider = PayPalProvider(
        _config(webhook_id=meta["webhook_id"]),
        FakeClock(meta["now"]),
        trust_store=trust,
        fetcher=fetcher,
    )
    [event] = provider.verify(WebhookRequest(body=body, headers=meta["headers"]))
    assert event.event_id == "WH-1F78928319310462G-18R51787X87914712"
    assert event.event_type == "PAYMENT.SALE.PENDING"
    assert fetcher.fetched == [meta["headers"]["paypal-cert-url"], meta["issuer_url"]]


def test_real_paypal_delivery_fails_for_another_webhook_id() -> None:
    meta, body, fetcher, trust = _real_delivery()
    provider = PayPalProvider(
        _config(webhook_id="1JE4291016473214C"),
        FakeClock(meta["now"]),
        trust_store=trust,
        fetcher=fetcher,
    )
    with pytest.raises(VerificationError, match="does not match"):
        provider.verify(WebhookRequest(body=body, headers=meta["headers"]))


def test_real_paypal_delivery_fails_once_paypals_certificate_expired() -> None:
    meta, body, fetcher, trust = _real_delivery()
    later = 1_773_000_000  # 2026-03-08, after the certificate's notAfter (2026-03-03)
    headers = dict(meta["headers"], **{"paypal-transmission-time": "2026-03-08T20:00:00Z"})
    provider = PayPalProvider(
        _config(webhook_id=meta["webhook_id"]),
        FakeClock(later),
        trust_store=trust,
        fetcher=fetcher,
    )
    with pytest.raises(VerificationError, match="expired"):
        provider.verify(WebhookRequest(body=body, headers=headers))


# failure modes ------------------------------------------------------------------------------


def test_accepts_a_delivery_signed_by_paypals_certificate() -> None:
    provider, _ = make_provider()
    [event] = provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))
    assert event.event_id == "WH-58D329510W468432D-8HN650336L201105X"


def test_rejects_a_delivery_signed_for_another_webhook_id() -> None:
    provider, _ = make_provider()
    with pytest.raises(VerificationError, match="does not match"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1), webhook_id="1JE4291016473214C"))


def test_accepts_any_configured_webhook_id_during_rotation() -> None:
    provider, _ = make_provider(webhook_id=["1JE4291016473214C", WEBHOOK_ID])
    assert provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_rejects_a_tampered_body() -> None:
    provider, _ = make_provider()
    request = delivery(CAPTURE_BODY, rsa_key(1))
    tampered = CAPTURE_BODY.replace(b'"30.00"', b'"90.00"')
    with pytest.raises(VerificationError, match="does not match"):
        provider.verify(replace(request, body=tampered))


def _with_header(request: WebhookRequest, name: str, value: str | None) -> WebhookRequest:
    headers = {k: v for k, v in request.headers.items() if k != name}
    if value is not None:
        headers[name] = value
    return replace(request, headers=headers)


def test_rejects_a_tampered_transmission_id() -> None:
    provider, _ = make_provider()
    request = delivery(CAPTURE_BODY, rsa_key(1))
    forged = _with_header(request, "paypal-transmission-id", "1c6772d0-5106-11ef-9b66-89f3f924d48b")
    with pytest.raises(VerificationError, match="does not match"):
        provider.verify(forged)


def test_rejects_a_tampered_transmission_time() -> None:
    provider, _ = make_provider()
    request = delivery(CAPTURE_BODY, rsa_key(1))
    forged = _with_header(request, "paypal-transmission-time", "2023-11-14T22:13:21Z")
    with pytest.raises(VerificationError, match="does not match"):
        provider.verify(forged)


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("not base64!", "not base64"),
        ("YWJj\n", "not base64"),
        ("YWJ=", "not canonical"),
        ("YWI=", "does not match"),  # canonical base64 of the wrong bytes
        ("YWJ", "not base64"),
    ],
)
def test_rejects_a_malformed_signature(signature: str, reason: str) -> None:
    provider, _ = make_provider()
    request = _with_header(delivery(CAPTURE_BODY, rsa_key(1)), "paypal-transmission-sig", signature)
    with pytest.raises(VerificationError, match=reason):
        provider.verify(request)


def test_rejects_a_non_canonical_spelling_of_the_signature() -> None:
    provider, _ = make_provider()
    request = delivery(CAPTURE_BODY, rsa_key(1))
    signature = request.headers["paypal-transmission-sig"]
    # 256 bytes end in "==": the last data character carries 4 unused bits.
    last = signature[-3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = alphabet[alphabet.index(last) ^ 1]
    assert base64.b64decode(signature[:-3] + sibling + "==") == base64.b64decode(signature)
    forged = _with_header(request, "paypal-transmission-sig", signature[:-3] + sibling + "==")
    with pytest.raises(VerificationError, match="canonical"):
        provider.verify(forged)


@pytest.mark.parametrize("algorithm", ["SHA1withRSA", "sha256withrsa", "SHA256withECDSA", "none"])
def test_rejects_any_other_algorithm(algorithm: str) -> None:
    provider, fetcher = make_provider()
    request = _with_header(delivery(CAPTURE_BODY, rsa_key(1)), "paypal-auth-algo", algorithm)
    with pytest.raises(VerificationError, match="PAYPAL-AUTH-ALGO"):
        provider.verify(request)
    assert fetcher.fetched == []


def test_rejects_a_signature_made_with_another_key() -> None:
    provider, _ = make_provider()
    with pytest.raises(VerificationError, match="does not match"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(3)))


def test_rejects_a_certificate_from_an_untrusted_chain() -> None:
    rogue_ca = make_ca(rsa_key(3), "rogue root")
    provider, _ = make_provider(leaf=make_leaf(rogue_ca, rsa_key(3), rsa_key(1)))
    with pytest.raises(VerificationError, match="not trusted"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_rejects_a_trusted_certificate_that_is_not_paypals() -> None:
    ca = make_ca(rsa_key(0))
    provider, _ = make_provider(leaf=make_leaf(ca, rsa_key(0), rsa_key(1), names=("shop.example",)))
    with pytest.raises(VerificationError, match="not a PayPal message verification"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_rejects_an_expired_certificate() -> None:
    ca = make_ca(rsa_key(0))
    leaf = make_leaf(ca, rsa_key(0), rsa_key(1), not_before=at(2021), not_after=at(2023))
    provider, _ = make_provider(leaf=leaf)
    with pytest.raises(VerificationError, match="certificate is expired"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_cached_certificate_is_rejected_once_it_expires() -> None:
    ca = make_ca(rsa_key(0))
    leaf = make_leaf(ca, rsa_key(0), rsa_key(1), not_before=at(2023), not_after=at(2024))
    clock = FakeClock(NOW)
    provider, fetcher = make_provider(clock, leaf=leaf)
    assert provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))
    clock.now = at(2024).timestamp() + 10
    with pytest.raises(VerificationError, match="expired"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1), time="2024-01-01T00:00:10Z"))
    assert fetcher.fetched == [CERT_URL]


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
        "https://paypal.com@evil.example/v1/notifications/certs/CERT-1",
        "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
    ],
)
def test_rejects_a_cert_url_outside_paypal_before_fetching(cert_url: str) -> None:
    provider, fetcher = make_provider()
    with pytest.raises(VerificationError, match="certificate URL"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1), cert_url=cert_url))
    assert fetcher.fetched == []


@pytest.mark.parametrize(
    "header",
    [
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    ],
)
def test_rejects_a_delivery_missing_a_header(header: str) -> None:
    provider, _ = make_provider()
    request = _with_header(delivery(CAPTURE_BODY, rsa_key(1)), header, None)
    with pytest.raises(VerificationError, match=f"missing {header.upper()}"):
        provider.verify(request)


def test_rejects_a_transmission_older_than_the_tolerance() -> None:
    provider, fetcher = make_provider(FakeClock(NOW + 301))
    with pytest.raises(VerificationError, match="older than the tolerance"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))
    assert fetcher.fetched == []


def test_rejects_a_transmission_from_too_far_in_the_future() -> None:
    provider, _ = make_provider(FakeClock(NOW - 301))
    with pytest.raises(VerificationError, match="too far in the future"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_accepts_a_transmission_at_the_edge_of_a_configured_tolerance() -> None:
    provider, _ = make_provider(FakeClock(NOW + 60), tolerance_seconds=60)
    assert provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


@pytest.mark.parametrize(
    "time", ["2023-11-14T22:13:20", "1700000000", "2023-11-14 22:13:20Z", "Tue, 14 Nov 2023"]
)
def test_rejects_a_transmission_time_that_is_not_iso_8601_with_a_zone(time: str) -> None:
    provider, _ = make_provider()
    with pytest.raises(VerificationError, match="ISO 8601"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1), time=time))


def test_a_failing_certificate_fetch_is_a_verification_error() -> None:
    provider, fetcher = make_provider()
    fetcher.documents.clear()
    with pytest.raises(VerificationError, match="could not fetch"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_second_verification_does_not_refetch_the_certificate() -> None:
    provider, fetcher = make_provider()
    provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))
    provider.verify(delivery(CAPTURE_BODY, rsa_key(1), transmission_id="second-delivery"))
    assert fetcher.fetched == [CERT_URL]


def test_authentic_body_that_is_not_json_is_a_payload_error() -> None:
    provider, _ = make_provider()
    with pytest.raises(PayloadError):
        provider.verify(delivery(b"<xml/>", rsa_key(1)))


def test_authentic_event_without_an_id_is_a_payload_error() -> None:
    provider, _ = make_provider()
    with pytest.raises(PayloadError, match="id"):
        provider.verify(delivery(b'{"event_type":"PAYMENT.CAPTURE.COMPLETED"}', rsa_key(1)))


# properties ---------------------------------------------------------------------------------

_SIGNED_HEADERS = (
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "paypal-auth-algo",
)
_property = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_property
@given(data=st.data())
def test_property_any_single_byte_change_of_the_body_is_rejected(data: st.DataObject) -> None:
    provider, _ = make_provider()
    request = delivery(CAPTURE_BODY, rsa_key(1))
    index = data.draw(st.integers(0, len(CAPTURE_BODY) - 1), label="index")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != CAPTURE_BODY[index]), label="byte")
    body = CAPTURE_BODY[:index] + bytes([byte]) + CAPTURE_BODY[index + 1 :]
    with pytest.raises(VerificationError):
        provider.verify(replace(request, body=body))


@_property
@given(header=st.sampled_from(_SIGNED_HEADERS), value=st.text(min_size=0, max_size=400))
def test_property_any_change_of_a_signed_header_is_rejected(header: str, value: str) -> None:
    provider, _ = make_provider()
    request = delivery(CAPTURE_BODY, rsa_key(1))
    assume(value != request.headers[header])
    with pytest.raises(VerificationError):
        provider.verify(_with_header(request, header, value))


@_property
@given(header=st.sampled_from(_SIGNED_HEADERS), data=st.data())
def test_property_any_single_character_edit_of_a_header_is_rejected(
    header: str, data: st.DataObject
) -> None:
    provider, _ = make_provider()
    request = delivery(CAPTURE_BODY, rsa_key(1))
    value = request.headers[header]
    index = data.draw(st.integers(0, len(value) - 1), label="index")
    char = data.draw(st.characters(codec="utf-8").filter(lambda c: c != value[index]))
    with pytest.raises(VerificationError):
        provider.verify(_with_header(request, header, value[:index] + char + value[index + 1 :]))


# online verification ------------------------------------------------------------------------


@dataclass
class FakePayPalApi:
    """PayPal's REST API in memory: OAuth tokens and verify-webhook-signature."""

    verdict: str = "SUCCESS"
    verify_status: int = 200
    valid_credentials: tuple[str, ...] = ("client-1:secret-1",)
    requests: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    unauthorized_once: bool = False
    revoked: bool = False
    issued: int = 0

    def post(self, url: str, body: bytes, headers: Any) -> HttpResponse:
        self.requests.append((url, body, dict(headers)))
        if url.endswith("/v1/oauth2/token"):
            basic = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode()
            if basic not in self.valid_credentials:
                return HttpResponse(401, b'{"error":"invalid_client"}')
            self.issued += 1
            token = {"access_token": f"token-{self.issued}", "expires_in": 32400}
            return HttpResponse(200, json.dumps(token).encode())
        if url.endswith("/v1/notifications/verify-webhook-signature"):
            if self.unauthorized_once:
                self.unauthorized_once = False
                return HttpResponse(401, b"{}")
            if self.revoked or headers["Authorization"] != f"Bearer token-{self.issued}":
                return HttpResponse(401, b"{}")
            answer = {"verification_status": self.verdict}
            return HttpResponse(self.verify_status, json.dumps(answer).encode())
        return HttpResponse(404, b"")

    def paths(self) -> list[str]:
        return [url.removeprefix("https://api-m.paypal.com") for url, _, _ in self.requests]


def online_provider(
    api: FakePayPalApi, clock: FakeClock | None = None, secrets: list[str] | None = None
) -> PayPalProvider:
    config = _config(verification="online", secrets=secrets or ["client-1:secret-1"])
    return PayPalProvider(config, clock or FakeClock(NOW), http_client=api)


def test_online_mode_accepts_what_paypal_verifies_and_sends_the_raw_body_verbatim() -> None:
    api = FakePayPalApi()
    body = b'{"id":"WH-1", "event_type":"PAYMENT.CAPTURE.COMPLETED" ,"resource":{}}'
    request = delivery(body, rsa_key(1))
    [event] = online_provider(api).verify(request)
    assert event.event_id == "WH-1"
    assert api.paths() == ["/v1/oauth2/token", "/v1/notifications/verify-webhook-signature"]
    _, sent, _ = api.requests[1]
    assert sent.endswith(b'"webhook_event":' + body + b"}")
    payload = json.loads(sent)
    assert payload["webhook_id"] == WEBHOOK_ID
    assert payload["transmission_sig"] == request.headers["paypal-transmission-sig"]
    assert payload["cert_url"] == CERT_URL
    assert payload["transmission_time"] == NOW_ISO


def test_online_mode_rejects_what_paypal_does_not_verify() -> None:
    with pytest.raises(VerificationError, match="not verified"):
        online_provider(FakePayPalApi(verdict="FAILURE")).verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_online_mode_treats_an_api_error_as_a_verification_error() -> None:
    with pytest.raises(VerificationError, match="HTTP 500"):
        online_provider(FakePayPalApi(verify_status=500)).verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_online_mode_treats_an_unreachable_api_as_a_verification_error() -> None:
    class Down:
        def post(self, url: str, body: bytes, headers: Any) -> HttpResponse:
            raise ConnectionResetError("connection reset")

    provider = PayPalProvider(
        _config(verification="online", secrets=["client-1:secret-1"]),
        FakeClock(NOW),
        http_client=Down(),
    )
    with pytest.raises(VerificationError, match="unreachable"):
        provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_online_mode_reuses_its_token_until_it_expires() -> None:
    api = FakePayPalApi()
    clock = FakeClock(NOW)
    provider = online_provider(api, clock)
    provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))
    provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))
    assert api.issued == 1
    clock.advance(32400)
    provider.verify(delivery(CAPTURE_BODY, rsa_key(1), time="2023-11-15T07:13:20Z"))
    assert api.issued == 2


def test_online_mode_fetches_a_fresh_token_once_when_paypal_refuses_the_cached_one() -> None:
    api = FakePayPalApi(unauthorized_once=True)
    provider = online_provider(api)
    assert provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))
    assert api.issued == 2


def test_online_mode_gives_up_when_paypal_refuses_the_fresh_token_too() -> None:
    api = FakePayPalApi(revoked=True)
    with pytest.raises(VerificationError, match="HTTP 401"):
        online_provider(api).verify(delivery(CAPTURE_BODY, rsa_key(1)))
    assert api.issued == 2


def test_online_mode_tries_the_next_credentials_when_paypal_refuses_the_first() -> None:
    api = FakePayPalApi(valid_credentials=("client-2:secret-2",))
    provider = online_provider(api, secrets=["client-1:old", "client-2:secret-2"])
    assert provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_online_mode_rejects_when_every_credential_is_refused() -> None:
    api = FakePayPalApi(valid_credentials=())
    with pytest.raises(VerificationError, match="refused every configured client credential"):
        online_provider(api).verify(delivery(CAPTURE_BODY, rsa_key(1)))


def test_online_mode_checks_the_transmission_time_before_calling_paypal() -> None:
    api = FakePayPalApi()
    with pytest.raises(VerificationError, match="older than the tolerance"):
        online_provider(api, FakeClock(NOW + 3600)).verify(delivery(CAPTURE_BODY, rsa_key(1)))
    assert api.requests == []


def test_online_mode_rejects_a_body_paypal_could_not_verify_without_calling_it() -> None:
    api = FakePayPalApi()
    with pytest.raises(VerificationError, match="not JSON"):
        online_provider(api).verify(delivery(b"\xff\xfe", rsa_key(1)))
    assert api.requests == []


@pytest.mark.parametrize(
    "options",
    [
        {"verification": "online"},
        {"verification": "online", "secrets": ["no-colon"]},
        {"verification": "online", "secrets": ["a:b"], "api_base": "https://evil.example"},
        {"verification": "sometimes"},
        {"webhook_id": ""},
        {"webhook_id": [1, 2]},
    ],
)
def test_rejects_an_invalid_configuration(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PayPalProvider(
            _config(**options), FakeClock(NOW), trust_store=TrustStore([make_ca(rsa_key(0))])
        )


def test_trust_store_option_must_name_an_existing_file() -> None:
    with pytest.raises(ConfigError, match="trust_store"):
        PayPalProvider(_config(trust_store="/nonexistent/paypal-roots.pem"), FakeClock(NOW))


def test_trust_store_option_loads_the_anchors_from_a_pem_file(tmp_path: Path) -> None:
    ca = make_ca(rsa_key(0))
    bundle = tmp_path / "paypal-roots.pem"
    bundle.write_bytes(pem(ca))
    provider = PayPalProvider(
        _config(trust_store=str(bundle)),
        FakeClock(NOW),
        fetcher=FakeFetcher({CERT_URL: pem(make_leaf(ca, rsa_key(0), rsa_key(1)))}),
    )
    assert provider.verify(delivery(CAPTURE_BODY, rsa_key(1)))


# payment events -----------------------------------------------------------------------------


def _events(name: str) -> list[Any]:
    """The payment events of a stored vector (``*.json``) or of a sample as recorded."""
    provider, _ = make_provider()
    payload = load_event("paypal", name) if name.endswith(".json") else load_sample("paypal", name)
    event = json.loads(payload)
    webhook = StoredWebhook(
        webhook_id="wh_test",
        provider="paypal",
        provider_type="paypal",
        event_id=event["id"],
        event_type=event["event_type"],
        payload=payload,
        received_at=NOW,
        occurred_at=1_600_000_000.0,
    )
    return provider.payment_events(webhook)


@pytest.mark.parametrize(
    ("name", "kind", "payment_id", "amount"),
    [
        ("vector-body.json", K.SUCCEEDED, "12A34567BC123456S", 3000),
        ("PAYMENT.CAPTURE.PENDING", K.PENDING, "02T21492PP3782704", 251),
        ("PAYMENT.CAPTURE.DECLINED", K.FAILED, "7U133281TB3277326", 18510),
        ("real-body.json", K.PENDING, "10H81276XF6353701", 1000),
    ],
)
def test_maps_capture_and_sale_events(name: str, kind: K, payment_id: str, amount: int) -> None:
    [event] = _events(name)
    assert (event.kind, event.payment_id, event.amount) == (kind, payment_id, amount)
    assert event.currency in ("USD", "EUR")
    assert event.occurred_at == 1_600_000_000.0


def test_maps_a_capture_refund_to_the_capture_named_by_its_up_link() -> None:
    [event] = _events("PAYMENT.CAPTURE.REFUNDED")
    assert event.kind is K.REFUNDED
    assert event.payment_id == "0JF852973C016714D"
    assert (event.refund_id, event.amount, event.refunded_total) == ("1Y107995YT783435V", 99, 198)


def test_maps_a_reversal_to_a_refund_of_the_capture() -> None:
    [event] = _events("PAYMENT.CAPTURE.REVERSED")
    assert (event.kind, event.payment_id) == (K.REFUNDED, "4L335234718889942")
    assert (event.refund_id, event.amount) == ("09E71677NS257044M", 251)


def test_maps_a_v1_sale_refund_with_its_negative_amount_as_a_positive_refund() -> None:
    [event] = _events("PAYMENT.SALE.REFUNDED")
    assert (event.kind, event.payment_id, event.amount) == (K.REFUNDED, "9T0916710M1105906", 1)


def test_maps_a_dispute_opened_against_the_sellers_transaction() -> None:
    [event] = _events("CUSTOMER.DISPUTE.CREATED")
    assert (event.kind, event.payment_id) == (K.DISPUTE_OPENED, "00D10444LD479031K")
    assert (event.dispute_id, event.amount, event.currency) == ("PP-000-042-663-135", 300, "USD")


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        ("RESOLVED_BUYER_FAVOUR", K.DISPUTE_LOST),
        ("ACCEPTED", K.DISPUTE_LOST),
        ("RESOLVED_SELLER_FAVOUR", K.DISPUTE_WON),
        ("CANCELED_BY_BUYER", K.DISPUTE_WON),
        ("DENIED", K.DISPUTE_WON),
        ("RESOLVED_WITH_PAYOUT", K.DISPUTE_WON),
    ],
)
def test_maps_a_resolved_dispute_by_its_outcome(outcome: str, kind: K) -> None:
    provider, _ = make_provider()
    event = json.loads(load_sample("paypal", "CUSTOMER.DISPUTE.RESOLVED"))
    event["resource"]["dispute_outcome"]["outcome_code"] = outcome
    [mapped] = provider.payment_events(_webhook(event))
    assert (mapped.kind, mapped.dispute_id) == (kind, "PP-000-042-663-135")


def test_a_resolution_without_a_known_outcome_maps_to_nothing() -> None:
    provider, _ = make_provider()
    event = json.loads(load_sample("paypal", "CUSTOMER.DISPUTE.RESOLVED"))
    event["resource"]["dispute_outcome"] = {"outcome_code": "NONE"}
    assert provider.payment_events(_webhook(event)) == []


def test_a_refund_naming_no_capture_is_a_payload_error() -> None:
    provider, _ = make_provider()
    event = json.loads(load_sample("paypal", "PAYMENT.CAPTURE.REFUNDED"))
    event["resource"]["links"] = []
    with pytest.raises(PayloadError, match="names no capture"):
        provider.payment_events(_webhook(event))


def test_converts_major_units_with_the_currency_exponent() -> None:
    provider, _ = make_provider()
    event = json.loads(CAPTURE_BODY)
    event["resource"]["amount"] = {"currency_code": "JPY", "value": "1500"}
    [mapped] = provider.payment_events(_webhook(event))
    assert (mapped.amount, mapped.currency) == (1500, "JPY")


def test_events_about_no_payment_map_to_nothing() -> None:
    provider, _ = make_provider()
    event = {"id": "WH-X", "event_type": "BILLING.PLAN.CREATED", "resource": {"id": "P-1"}}
    assert provider.payment_events(_webhook(event)) == []


def test_capture_refund_and_dispute_land_on_one_ledger_row() -> None:
    provider, _ = make_provider()
    capture = json.loads(CAPTURE_BODY)
    refund = json.loads(load_sample("paypal", "PAYMENT.CAPTURE.REFUNDED"))
    refund["resource"]["links"][1]["href"] = (
        "https://api.paypal.com/v2/payments/captures/" + (capture["resource"]["id"])
    )
    refund["resource"]["amount"]["value"] = "10.00"
    dispute = json.loads(load_sample("paypal", "CUSTOMER.DISPUTE.CREATED"))
    dispute["resource"]["disputed_transactions"][0]["seller_transaction_id"] = capture["resource"][
        "id"
    ]
    events = [
        e for body in (capture, refund, dispute) for e in provider.payment_events(_webhook(body))
    ]
    record = derive("paypal", capture["resource"]["id"], events)
    assert record.status is PaymentStatus.DISPUTED
    assert (record.amount_captured, record.amount_refunded, record.amount_disputed) == (
        3000,
        1000,
        300,
    )


def _webhook(event: dict[str, Any]) -> StoredWebhook:
    return StoredWebhook(
        webhook_id="wh_test",
        provider="paypal",
        provider_type="paypal",
        event_id=event["id"],
        event_type=event["event_type"],
        payload=json.dumps(event).encode(),
        received_at=NOW,
    )


# samples ------------------------------------------------------------------------------------


def test_sample_request_without_a_signer_explains_why_paypal_cannot_be_simulated() -> None:
    provider, _ = make_provider()
    with pytest.raises(PayloadError, match="own private key"):
        provider.sample_request()


_SAMPLE_KINDS: dict[str, K] = {
    "PAYMENT.CAPTURE.COMPLETED": K.SUCCEEDED,
    "PAYMENT.CAPTURE.PENDING": K.PENDING,
    "PAYMENT.CAPTURE.DENIED": K.FAILED,
    "PAYMENT.CAPTURE.DECLINED": K.FAILED,
    "PAYMENT.CAPTURE.REFUNDED": K.REFUNDED,
    "PAYMENT.CAPTURE.REVERSED": K.REFUNDED,
    "PAYMENT.SALE.REFUNDED": K.REFUNDED,
    "CUSTOMER.DISPUTE.CREATED": K.DISPUTE_OPENED,
    "CUSTOMER.DISPUTE.RESOLVED": K.DISPUTE_LOST,
}


@pytest.mark.parametrize("event_type", PayPalProvider.sample_event_types)
def test_signed_samples_verify_and_map_to_payment_events(event_type: str) -> None:
    ca = make_ca(rsa_key(0))
    provider = PayPalProvider(
        _config(),
        FakeClock(NOW),
        trust_store=TrustStore([ca]),
        fetcher=FakeFetcher({CERT_URL: pem(make_leaf(ca, rsa_key(0), rsa_key(1)))}),
        sample_signer=PayPalSampleSigner(rsa_key(1), CERT_URL),
    )
    request = provider.sample_request(event_type)
    [verified] = provider.verify(request)
    assert verified.event_type == event_type
    [mapped] = provider.payment_events(
        StoredWebhook(
            "wh_test", "paypal", "paypal", verified.event_id, verified.event_type,
            verified.payload, received_at=NOW, occurred_at=verified.occurred_at,
        )
    )  # fmt: skip
    assert mapped.kind is _SAMPLE_KINDS[event_type]
    assert mapped.amount == 3000


def test_every_sample_event_type_has_an_expected_mapping() -> None:
    assert set(_SAMPLE_KINDS) == set(PayPalProvider.sample_event_types)
    assert set(sample_types("paypal")) <= set(PayPalProvider.sample_event_types)


def test_the_completed_sample_as_recorded_is_the_known_vectors_signed_body() -> None:
    # So the known answer above also pins the sample's placeholders to their recorded values.
    assert sample_bytes("paypal", "PAYMENT.CAPTURE.COMPLETED") == CAPTURE_BODY


def test_every_sample_delivery_is_a_new_event_with_the_given_time() -> None:
    signer = PayPalSampleSigner(rsa_key(1), CERT_URL)
    provider = PayPalProvider(_config(), FakeClock(NOW), sample_signer=signer)
    first, second = (provider.sample_request("PAYMENT.CAPTURE.REFUNDED") for _ in range(2))
    assert first.headers["paypal-transmission-id"] != second.headers["paypal-transmission-id"]
    events = [json.loads(request.body) for request in (first, second)]
    assert events[0]["id"] != events[1]["id"]
    assert events[0]["resource"]["id"] != events[1]["resource"]["id"]
    assert events[0]["create_time"] == "2023-11-14T22:13:20.000Z"
    assert first.headers["paypal-transmission-time"] == NOW_ISO
