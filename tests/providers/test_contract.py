"""The contract every provider keeps, run over all of them.

Each provider's own test module keeps only its quirks and its SDK agreement; what holds for
every provider is here: every sample verifies and yields storable events; a changed body, a
missing signature, a foreign secret are refused; during rotation either secret is accepted;
a timestamped scheme refuses old and future timestamps outside its tolerance and accepts them
inside; an unsigned header never changes a webhook's identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from payhook.core.model import WebhookRequest
from payhook.errors import VerificationError
from payhook.providers import Provider, ProviderConfig, provider_class
from payhook.providers.hmac import HmacProvider
from payhook.service.ingest import Ingest, check_storable
from tests.conftest import FakeClock
from tests.providers import paypal_pki
from tests.reliability import fleet

NOW = 1_733_400_000.0
#: A second secret for each provider type, in its own format (rotation).
OTHER_SECRETS = {
    "adyen": "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF",
    "braintree": "bt_private_rotated_0123456789",
    "square": "Ibxx_rotatedSignatureKey0",
    "standard": "whsec_cm90YXRlZC1zZWNyZXQtMDEyMzQ1Njc4OQ==",
}
#: Providers that cannot sign with a configured secret: their section, their builder and the
#: option that rotates (PayPal: the webhook id; its samples are signed by a test PKI).
SIGNED_ELSEWHERE: dict[str, tuple[dict[str, Any], Callable[..., Provider], str, Any]] = {
    "paypal": (
        {"webhook_id": paypal_pki.WEBHOOK_ID},
        paypal_pki.provider_with_test_pki,
        "webhook_id",
        "1JE4291016473214C",
    ),
}
TYPES = [*fleet.available(), *SIGNED_ELSEWHERE]


def build(name: str, clock: Callable[[], float], **overrides: Any) -> Provider:
    if name in SIGNED_ELSEWHERE:
        base, builder, _, _ = SIGNED_ELSEWHERE[name]
        config = ProviderConfig.from_mapping(name, {"type": name, **base, **overrides})
        return builder(config, clock)
    section = {**fleet.sections([name])[name], **overrides}
    config = ProviderConfig.from_mapping(name, section)
    return provider_class(config.provider_type)(config, clock)


def refused(provider: Provider, request: WebhookRequest) -> bool:
    try:
        provider.verify(request)
    except VerificationError:
        return True
    return False


def with_headers(request: WebhookRequest, **changes: str | None) -> WebhookRequest:
    headers = dict(request.headers)
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return dataclasses.replace(request, headers=headers)


def sample_types(provider: Provider) -> list[str | None]:
    return list(provider.sample_event_types) or [None]


@pytest.mark.parametrize("name", TYPES)
def test_every_sample_verifies_into_storable_events(name: str) -> None:
    provider = build(name, FakeClock(NOW))
    ingest = Ingest({name: provider}, FakeClock(NOW))
    for event_type in sample_types(provider):
        request = provider.sample_request(event_type)
        events = provider.verify(request)
        assert events, event_type
        for event in events:
            check_storable(event)
            if event_type is not None and len(events) == 1 and name != "adyen":
                assert event.event_type == event_type
        webhooks = ingest.verify(name, request)
        for webhook in webhooks:
            provider.payment_events(webhook)  # maps without raising


@pytest.mark.parametrize("name", TYPES)
def test_a_changed_body_is_refused(name: str) -> None:
    provider = build(name, FakeClock(NOW))
    request = provider.sample_request()
    body = request.body
    changes = [body[:-1], b""]
    if isinstance(provider, HmacProvider):  # the raw bytes are signed: any byte counts
        changes += [body + b" ", body.replace(b"0", b"1", 1)]
    elif name == "adyen":  # each item's fields are signed (its additionalData is not)
        changes.append(body.replace(b'"value":', b'"value":9', 1))
    else:
        changes.append(body.replace(b"0", b"1", 1))
    for changed in changes:
        if changed != body:
            assert refused(provider, dataclasses.replace(request, body=changed)), changed[:40]


@pytest.mark.parametrize("name", TYPES)
def test_a_delivery_signed_with_another_secret_is_refused_and_rotation_accepts_both(
    name: str,
) -> None:
    clock = FakeClock(NOW)
    current = build(name, clock)
    if name in SIGNED_ELSEWHERE:
        _, _, key, other = SIGNED_ELSEWHERE[name]
        mine = current.config.option(key)
    else:
        key, mine = "secrets", current.config.secrets[0]
        other = OTHER_SECRETS.get(name, "rotated_" + mine)
    stranger = build(name, clock, **{key: [other]})
    from_stranger = stranger.sample_request()
    assert refused(current, from_stranger)
    rotating = build(name, clock, **{key: [mine, other]})
    assert rotating.verify(from_stranger)
    assert rotating.verify(current.sample_request())


HMAC_TYPES = [name for name in TYPES if issubclass(provider_class(name), HmacProvider)]


@pytest.mark.parametrize("name", HMAC_TYPES)
def test_each_header_the_scheme_reads_is_required(name: str) -> None:
    provider = build(name, FakeClock(NOW))
    assert isinstance(provider, HmacProvider)
    scheme = provider.scheme
    request = provider.sample_request()
    for header in (scheme.header, scheme.timestamp_header, scheme.id_header):
        if header:
            assert refused(provider, with_headers(request, **{header.lower(): None}))
            assert refused(provider, with_headers(request, **{header.lower(): ""}))


@pytest.mark.parametrize(
    "name",
    [n for n in HMAC_TYPES if build(n, FakeClock(NOW)).scheme.timestamped]  # type: ignore[attr-defined]
    + list(SIGNED_ELSEWHERE),  # PayPal's transmission time
)
def test_a_timestamped_scheme_keeps_its_tolerance_both_ways(name: str) -> None:
    clock = FakeClock(NOW)
    provider = build(name, clock)
    tolerance = provider.tolerance_seconds
    for offset, accepted in (
        (-tolerance - 1, False),
        (-tolerance + 1, True),
        (tolerance - 1, True),
        (tolerance + 1, False),
    ):
        signer = build(name, FakeClock(NOW + offset))
        request = signer.sample_request()
        assert refused(provider, request) is not accepted, offset


@pytest.mark.parametrize("name", TYPES)
def test_an_unsigned_header_never_changes_a_webhooks_identity(name: str) -> None:
    provider = build(name, FakeClock(NOW))
    ingest = Ingest({name: provider}, FakeClock(NOW))
    request = provider.sample_request()
    signed_ids = [w.webhook_id for w in ingest.verify(name, request)]
    unsigned = _unsigned_headers(provider, request)
    for header in unsigned:
        changed = with_headers(request, **{header: request.headers[header] + "-replayed"})
        try:
            ids = [w.webhook_id for w in ingest.verify(name, changed)]
        except VerificationError:
            continue  # refused is as good
        except Exception as exc:  # a payload error is a refusal too
            if type(exc).__name__ == "PayloadError":
                continue
            raise
        assert ids == signed_ids, header


def _unsigned_headers(provider: Provider, request: WebhookRequest) -> list[str]:
    """Headers of the sample the signature does not cover, except those that legitimately
    tell two events with one body apart (Shopify's topic: then the body must agree)."""
    covered = {"content-type"}
    if isinstance(provider, HmacProvider):
        scheme = provider.scheme
        covered |= {
            h.lower() for h in (scheme.header, scheme.timestamp_header, scheme.id_header) if h
        }
        covered |= {
            part[1]
            for part in provider.engine.parts
            if isinstance(part, tuple) and part[0] == "header"
        }
    distinguishing = {"x-shopify-topic", "x-event-name"}
    return [h for h in request.headers if h not in covered and h not in distinguishing]
