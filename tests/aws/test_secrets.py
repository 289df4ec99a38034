"""ProviderSecret: providers from Secrets Manager, cached for the TTL, stale on outage."""

from __future__ import annotations

import json

import pytest

from payhook.backends.aws.secrets import UNUSABLE, ProviderSecret, provider_configs
from payhook.errors import ConfigError, StorageUnavailableError
from payhook.providers.stripe import StripeProvider
from tests.aws.emulator import STRIPE_SECRET, AwsStack
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def provider_secret(stack: AwsStack, clock: FakeClock, ttl: int = 300) -> ProviderSecret:
    return ProviderSecret(
        stack.clients.secretsmanager,
        stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"],
        cache_seconds=ttl,
        clock=clock,
    )


def put_secret(stack: AwsStack, value: str) -> None:
    stack.client("secretsmanager").put_secret_value(
        SecretId=stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"], SecretString=value
    )


def rotated(*secrets: str) -> str:
    return json.dumps({"providers": {"stripe": {"secrets": list(secrets)}}})


def test_providers_are_built_from_the_secret_with_the_injected_clock(
    stack: AwsStack, clock: FakeClock
) -> None:
    providers = provider_secret(stack, clock).providers()
    stripe = providers["stripe"]
    assert isinstance(stripe, StripeProvider)
    assert stripe.config.secrets == (STRIPE_SECRET,)
    assert stripe.tolerance_seconds == 300
    assert stripe.clock is clock


def test_secret_is_read_again_only_after_the_cache_time(stack: AwsStack, clock: FakeClock) -> None:
    source = provider_secret(stack, clock, ttl=300)
    first = source.providers()
    put_secret(stack, rotated("whsec_new_rotated_secret", STRIPE_SECRET))

    clock.advance(299)
    assert source.providers() is first
    clock.advance(1)
    assert source.providers()["stripe"].config.secrets == (
        "whsec_new_rotated_secret",
        STRIPE_SECRET,
    )


def test_unchanged_secret_keeps_the_same_provider_objects(
    stack: AwsStack, clock: FakeClock
) -> None:
    source = provider_secret(stack, clock, ttl=0)
    assert source.providers()["stripe"] is source.providers()["stripe"]


def test_outage_after_a_good_read_serves_the_cached_providers(
    stack: AwsStack, clock: FakeClock
) -> None:
    source = provider_secret(stack, clock, ttl=10)
    first = source.providers()
    stack.client("secretsmanager").delete_secret(
        SecretId=stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"], ForceDeleteWithoutRecovery=True
    )
    clock.advance(60)
    assert source.providers() == first


def test_malformed_new_version_after_a_good_read_keeps_the_cached_providers(
    stack: AwsStack, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    source = provider_secret(stack, clock, ttl=10)
    first = source.providers()
    put_secret(stack, '{"providers": {"stripe": {"secrets": []}}}')
    clock.advance(60)
    assert source.providers() == first
    # Logged with the phrase the provider-secret alarm counts, before a cold start turns the
    # broken value into 503s.
    [line] = [r for r in caplog.records if r.name == "payhook.aws.secrets"]
    assert line.getMessage().startswith(UNUSABLE)


def test_nothing_cached_and_no_secret_is_storage_unavailable(
    stack: AwsStack, clock: FakeClock
) -> None:
    stack.client("secretsmanager").delete_secret(
        SecretId=stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"], ForceDeleteWithoutRecovery=True
    )
    with pytest.raises(StorageUnavailableError, match="ResourceNotFoundException"):
        provider_secret(stack, clock).providers()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"providers": {"stripe": {"secrets": ["whsec_x_test_secret_16"]', "got invalid JSON"),
        ('["whsec_x_test_secret_16"]', "got a JSON list, expected an object"),
        ('{"stripe": {"secrets": ["whsec_x_test_secret_16"]}}', "got no 'providers' key"),
        ('{"providers": {}}', "got an empty 'providers' object"),
        ('{"providers": ["whsec_x_test_secret_16"]}', "got 'providers' as a JSON list"),
        ('{"providers": {"stripe": {"secrets": "", "tolerance_seconds": 0}}}', "secrets"),
    ],
)
def test_malformed_secret_is_a_config_error_that_never_quotes_a_secret(
    text: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as raised:
        provider_configs(text)
    assert "whsec_x_test_secret_16" not in str(raised.value)


def test_unknown_provider_type_in_the_secret_is_a_config_error(
    stack: AwsStack, clock: FakeClock
) -> None:
    put_secret(stack, json.dumps({"providers": {"acme": {"secrets": ["k"]}}}))
    with pytest.raises(ConfigError, match="unknown provider type 'acme'"):
        provider_secret(stack, clock).providers()
