"""The events client of a configured provider, from its section's API options."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from payhook.backfill.errors import NoEventsApiError
from payhook.backfill.http import JsonApi, RetryPolicy, Sleep
from payhook.backfill.source import EventsApi
from payhook.options import convert
from payhook.providers.base import ProviderConfig

#: Provider types whose API lists events, with their live API base.
API_BASES = {
    "stripe": "https://api.stripe.com",
    "paddle": "https://api.paddle.com",
    "gocardless": "https://api.gocardless.com",
    "paypal": "https://api-m.paypal.com",
    "square": "https://connect.squareup.com",
}
#: Provider types backfill does not cover: no events API to read (adyen, braintree, mollie,
#: razorpay, lemonsqueezy; standard and generic are not one provider's API), or a listing not
#: implemented (checkout's Events API, another shape than its webhooks) or not confirmed to
#: match the webhooks (shopify, polar).
WITHOUT_EVENTS_API = (
    "adyen",
    "braintree",
    "checkout",
    "generic",
    "lemonsqueezy",
    "mollie",
    "polar",
    "razorpay",
    "shopify",
    "standard",
)


def supported(config: ProviderConfig) -> bool:
    """Whether the provider's type has an events client AND its section gives credentials."""
    if config.provider_type not in IMPLEMENTED:
        return False
    options = config.options
    if config.provider_type == "paypal":
        return bool(options.get("client_id") and options.get("client_secret"))
    return bool(options.get("api_key"))


def events_api(
    config: ProviderConfig,
    *,
    client: httpx.Client | None = None,
    policy: RetryPolicy | None = None,
    sleep: Sleep = time.sleep,
) -> EventsApi:
    """The events client of ``config`` (NoEventsApiError when there is none to build)."""
    where = f"providers.{config.name}"
    builder = IMPLEMENTED.get(config.provider_type)
    if builder is None:
        raise NoEventsApiError(
            f"{config.name}: provider type {config.provider_type!r} has no events API payhook"
            " can read"
            f" (backfill supports: {', '.join(sorted(IMPLEMENTED))})"
        )
    if not supported(config):
        needed = "client_id and client_secret" if config.provider_type == "paypal" else "api_key"
        raise NoEventsApiError(f"{where}: set {needed} to backfill from the events API")
    from payhook.providers import provider_class

    options = convert(config.options, provider_class(config.provider_type).Options, where)
    base = config.options.get("api_base") or API_BASES[config.provider_type]
    api = JsonApi(config.name, str(base), client=client, policy=policy, sleep=sleep)
    return builder(api, options)


def _stripe(api: JsonApi, options: Any) -> EventsApi:
    from payhook.backfill.stripe import StripeEvents

    return StripeEvents(api, options.api_key)


def _paddle(api: JsonApi, options: Any) -> EventsApi:
    from payhook.backfill.paddle import PaddleEvents

    return PaddleEvents(api, options.api_key)


def _gocardless(api: JsonApi, options: Any) -> EventsApi:
    from payhook.backfill.gocardless import GoCardlessEvents

    return GoCardlessEvents(api, options.api_key)


def _paypal(api: JsonApi, options: Any) -> EventsApi:
    from payhook.backfill.paypal import PayPalEvents

    return PayPalEvents(api, options.client_id, options.client_secret)


def _square(api: JsonApi, options: Any) -> EventsApi:
    from payhook.backfill.square import SquareEvents

    return SquareEvents(api, options.api_key)


IMPLEMENTED: dict[str, Callable[[JsonApi, Any], EventsApi]] = {
    "gocardless": _gocardless,
    "paddle": _paddle,
    "paypal": _paypal,
    "square": _square,
    "stripe": _stripe,
}
