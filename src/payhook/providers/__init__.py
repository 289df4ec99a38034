"""Providers: one module per payment provider, pure bytes + headers in, events out.

``PROVIDER_TYPES`` is the menu (type name -> ``module:Class``); a provider module is imported
only when a configured section uses it, which keeps start-up (and Lambda cold start) short.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from payhook.core.clock import Clock, system_clock
from payhook.errors import ConfigError
from payhook.options import convert
from payhook.providers.base import Provider, ProviderConfig, ProviderResponse

PROVIDER_TYPES: dict[str, str] = {
    "adyen": "payhook.providers.adyen:AdyenProvider",
    "braintree": "payhook.providers.braintree:BraintreeProvider",
    "checkout": "payhook.providers.checkout:CheckoutProvider",
    "generic": "payhook.providers.generic:GenericHmacProvider",
    "gocardless": "payhook.providers.gocardless:GoCardlessProvider",
    "lemonsqueezy": "payhook.providers.lemonsqueezy:LemonSqueezyProvider",
    "mollie": "payhook.providers.mollie:MollieProvider",
    "paddle": "payhook.providers.paddle:PaddleProvider",
    "paypal": "payhook.providers.paypal:PayPalProvider",
    "polar": "payhook.providers.polar:PolarProvider",
    "razorpay": "payhook.providers.razorpay:RazorpayProvider",
    "shopify": "payhook.providers.shopify:ShopifyProvider",
    "square": "payhook.providers.square:SquareProvider",
    "standard": "payhook.providers.standard:StandardWebhooksProvider",
    "stripe": "payhook.providers.stripe:StripeProvider",
}


def provider_class(provider_type: str) -> type[Provider]:
    try:
        target = PROVIDER_TYPES[provider_type]
    except KeyError:
        known = ", ".join(sorted(PROVIDER_TYPES))
        message = f"unknown provider type {provider_type!r}; expected one of: {known}"
        raise ConfigError(message) from None
    module_name, _, class_name = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load_provider_config(name: str, section: object) -> ProviderConfig:
    """A ``[providers.<name>]`` section (or its JSON from Secrets Manager), checked as strictly
    as the provider allows: known type, known options of the right types, strong secrets."""
    if not isinstance(section, dict):
        raise ConfigError(f"providers.{name}: got {type(section).__name__}, expected a table")
    config = ProviderConfig.from_mapping(name, section)
    cls = provider_class(config.provider_type)
    convert(config.options, cls.Options, f"providers.{name}")
    config.check_secrets(cls.min_secret_bytes)
    return config


def build_providers(
    configs: Mapping[str, ProviderConfig], clock: Clock = system_clock
) -> dict[str, Provider]:
    return {name: provider_class(cfg.provider_type)(cfg, clock) for name, cfg in configs.items()}


__all__ = [
    "PROVIDER_TYPES",
    "Provider",
    "ProviderConfig",
    "ProviderResponse",
    "build_providers",
    "load_provider_config",
    "provider_class",
]
