"""The providers the reliability harness drives over HTTP, and signed deliveries for them.

``SECTIONS`` holds one test configuration per provider type. A type whose module has not
landed (``provider_class`` fails) is left out, so the list grows as providers arrive.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from payhook.core.clock import Clock, system_clock
from payhook.core.model import WebhookRequest
from payhook.errors import PayhookError
from payhook.providers import Provider, ProviderConfig, provider_class
from payhook.service.ingest import Ingest

SECTIONS: dict[str, dict[str, Any]] = {
    "stripe": {"secrets": ["whsec_reliability_stripe"]},
    "standard": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    "adyen": {"secrets": ["44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"]},
    "square": {
        "secrets": ["Ibxx_5AKakO-3qeNVR61Dw"],
        "notification_url": "https://payhook.example/webhook/square",
    },
    "checkout": {"secrets": ["cko_reliability_signature_key"]},
    "razorpay": {"secrets": ["rzp_reliability_webhook_secret"]},
    "braintree": {"secrets": ["bt_private_reliability"], "public_key": "bt_public_reliability"},
    "paddle": {"secrets": ["pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh"]},
    "gocardless": {"secrets": ["gc_reliability_webhook_secret"]},
    "mollie": {"secrets": ["mollie_reliability_webhook_secret"]},
    "shopify": {"secrets": ["shpss_reliability_app_secret"]},
    "lemonsqueezy": {"secrets": ["lemon_reliability_signing_secret"]},
    "polar": {"secrets": ["polar_reliability_webhook_secret"]},
    "generic": {
        "secrets": ["generic_reliability_secret"],
        "signature_header": "X-Acme-Signature",
        "timestamp_header": "X-Acme-Timestamp",
        "signed_content": "{timestamp}.{body}",
        "event_id_path": "id",
        "event_type_path": "type",
        "payment_id_path": "data.id",
        "amount_path": "data.amount",
        "currency_path": "data.currency",
        "kinds": {"payment.succeeded": "succeeded", "payment.refunded": "refunded"},
    },
}

#: Types not driven over HTTP, and why.
LEFT_OUT = {
    "paypal": "PayPal signs with its own key; the server fetches the certificate from paypal.com",
}

#: Pre-signed loads take minutes; Paddle's default tolerance is 5 s.
LOAD_TOLERANCE_SECONDS = 900


def available(names: Iterable[str] | None = None) -> list[str]:
    """The provider types among ``names`` (default: all of ``SECTIONS``) that can be built."""
    found = []
    for name in names if names is not None else SECTIONS:
        if name not in SECTIONS:
            continue
        try:
            provider_class(name)
        except (ImportError, PayhookError):
            continue
        found.append(name)
    return found


def sections(names: Iterable[str], tolerance: int | None = None) -> dict[str, dict[str, Any]]:
    """``[providers.<name>]`` tables for the given types (each named after its type)."""
    out = {}
    for name in names:
        section = {"type": name, **SECTIONS[name]}
        if tolerance is not None:
            section["tolerance_seconds"] = tolerance
        out[name] = section
    return out


def build(
    provider_sections: Mapping[str, Mapping[str, Any]], clock: Clock = system_clock
) -> dict[str, Provider]:
    """The same providers the server builds from these sections, in this process."""
    built = {}
    for name, section in provider_sections.items():
        config = ProviderConfig.from_mapping(name, dict(section))
        built[name] = provider_class(config.provider_type)(config, clock)
    return built


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml(document: Mapping[str, Mapping[str, Any]]) -> str:
    """Render ``{"server": {...}, "providers": {"stripe": {...}}}`` as a TOML file."""
    lines: list[str] = []
    for table, values in document.items():
        if table == "providers":
            for name, section in values.items():
                lines.append(f"[providers.{name}]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in section.items()]
        else:
            lines.append(f"[{table}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One signed HTTP delivery and the webhook ids the server must store for it."""

    provider: str
    request: WebhookRequest
    webhook_ids: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"/webhook/{self.provider}"

    def http(self) -> bytes:
        """The delivery as HTTP/1.1 request bytes (keep-alive)."""
        body = self.request.body
        lines = [f"POST {self.path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in self.request.headers.items() if k != "content-length"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def delivery(ingest: Ingest, name: str, request: WebhookRequest) -> Delivery:
    """Wrap a request, verifying it in-process for the ids the server will derive."""
    return Delivery(name, request, tuple(w.webhook_id for w in ingest.verify(name, request)))


def _stripe_follow_up(provider: Provider) -> Callable[[WebhookRequest], WebhookRequest] | None:
    """A refund of the same payment, so some payments see more than one event."""
    if provider.provider_type != "stripe":
        return None
    from payhook.providers.stripe import sample_event, stripe_signature

    def refund(first: WebhookRequest) -> WebhookRequest:
        payment_id = json.loads(first.body)["data"]["object"]["id"]
        now = int(provider.clock())
        event = sample_event("refund.created", now, payment_id=payment_id, amount=700)
        body = json.dumps(event, separators=(",", ":")).encode()
        signature = stripe_signature(provider.config.secrets[0], now, body)
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                "stripe-signature": f"t={now},v1={signature}",
            },
        )

    return refund


def mixed(
    providers: Mapping[str, Provider],
    count: int,
    *,
    duplicate_ratio: float = 0.1,
    seed: int = 0,
) -> list[Delivery]:
    """``count`` deliveries across every provider and event type, shuffled.

    A ``duplicate_ratio`` share are byte-identical redeliveries of earlier ones; about a third
    of Stripe payments also get a refund later, so some payment rows change twice.
    """
    rng = random.Random(seed)
    ingest = Ingest(providers)
    names = sorted(providers)
    out: list[Delivery] = []
    cycles = {name: 0 for name in names}
    while len(out) < count:
        if out and rng.random() < duplicate_ratio:
            out.append(rng.choice(out))
            continue
        name = names[len(out) % len(names)]
        provider = providers[name]
        types = provider.sample_event_types or (None,)
        event_type = types[cycles[name] % len(types)]
        cycles[name] += 1
        first = provider.sample_request(event_type)
        out.append(delivery(ingest, name, first))
        follow_up = _stripe_follow_up(provider)
        if follow_up and event_type == "payment_intent.succeeded" and rng.random() < 0.35:
            out.append(delivery(ingest, name, follow_up(first)))
    del out[count:]
    head, tail = out[:1], out[1:]
    rng.shuffle(tail)  # duplicates and refunds arrive in any order, as providers send them
    return head + tail
