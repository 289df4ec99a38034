"""AwsSettings: the contract's environment variables, validated with "got X, expected Y"."""

from __future__ import annotations

import pytest

from payhook.backends.aws.settings import AwsSettings, load_settings
from payhook.errors import ConfigError

pytestmark = pytest.mark.aws

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:payhook/providers-AbCdEf"
QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/payhook-processing"
FULL = {
    "PAYHOOK_WEBHOOKS_TABLE": "webhooks",
    "PAYHOOK_PAYMENTS_TABLE": "payments",
    "PAYHOOK_AUDIT_TABLE": "audit",
    "PAYHOOK_QUEUE_URL": QUEUE,
    "PAYHOOK_EVENT_BUS_NAME": "bus",
    "PAYHOOK_PROVIDERS_SECRET_ARN": ARN,
    "PAYHOOK_ENVIRONMENT": "prod",
}


def test_full_environment_with_defaults() -> None:
    settings = load_settings(FULL, ["webhooks_table", "queue_url"])
    assert settings == AwsSettings(
        environment="prod",
        webhooks_table="webhooks",
        payments_table="payments",
        audit_table="audit",
        queue_url=QUEUE,
        event_bus_name="bus",
        providers_secret_arn=ARN,
        body_limit_bytes=1_048_576,
        raw_payload_retention_days=30,
        secret_cache_seconds=300,
        service_name="payhook",
    )
    assert settings.raw_payload_retention_seconds == 30 * 86_400


def test_limits_are_read_as_integers() -> None:
    env = {
        **FULL,
        "PAYHOOK_BODY_LIMIT_BYTES": "2048",
        "PAYHOOK_RAW_PAYLOAD_RETENTION_DAYS": "7",
        "PAYHOOK_SECRET_CACHE_SECONDS": "0",
        "PAYHOOK_SWEEP_AFTER_SECONDS": "900",
        "PAYHOOK_SWEEP_LIMIT": "50",
        "POWERTOOLS_SERVICE_NAME": "payhook-eu",
    }
    settings = load_settings(env, [])
    assert (settings.body_limit_bytes, settings.raw_payload_retention_days) == (2048, 7)
    assert (settings.secret_cache_seconds, settings.service_name) == (0, "payhook-eu")
    assert (settings.sweep_after_seconds, settings.sweep_limit) == (900, 50)


def test_a_lambda_does_not_need_the_names_it_does_not_use() -> None:
    env = {"PAYHOOK_AUDIT_TABLE": "a", "PAYHOOK_ENVIRONMENT": "dev"}
    settings = load_settings(env, ["audit_table"])
    assert (settings.audit_table, settings.webhooks_table) == ("a", "")


@pytest.mark.parametrize("missing", ["PAYHOOK_WEBHOOKS_TABLE", "PAYHOOK_ENVIRONMENT"])
def test_missing_required_variable_names_it(missing: str) -> None:
    env = {k: v for k, v in FULL.items() if k != missing}
    with pytest.raises(ConfigError, match=f"{missing}: got nothing, expected a non-empty value"):
        load_settings(env, ["webhooks_table"])


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PAYHOOK_BODY_LIMIT_BYTES", "1MB", "expected an integer from 1 to 6291456"),
        ("PAYHOOK_BODY_LIMIT_BYTES", "0", "expected an integer from 1 to 6291456"),
        ("PAYHOOK_BODY_LIMIT_BYTES", "7000000", "expected an integer from 1 to 6291456"),
        ("PAYHOOK_RAW_PAYLOAD_RETENTION_DAYS", "-1", "expected an integer from 1 to 3650"),
        ("PAYHOOK_SECRET_CACHE_SECONDS", "5m", "expected an integer from 0 to 86400"),
        ("PAYHOOK_SWEEP_AFTER_SECONDS", "59", "expected an integer from 60 to 86400"),
        ("PAYHOOK_SWEEP_LIMIT", "0", "expected an integer from 1 to 10000"),
    ],
)
def test_malformed_integer_says_what_it_got_and_expected(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=f"{name}: got '{value}', {expected}"):
        load_settings({**FULL, name: value}, [])


def test_malformed_arn_and_queue_url_are_refused_even_when_not_required() -> None:
    with pytest.raises(ConfigError, match="got 'payhook/providers', expected a Secrets Manager"):
        load_settings({**FULL, "PAYHOOK_PROVIDERS_SECRET_ARN": "payhook/providers"}, [])
    with pytest.raises(ConfigError, match="PAYHOOK_QUEUE_URL: got 'payhook-processing'"):
        load_settings({**FULL, "PAYHOOK_QUEUE_URL": "payhook-processing"}, ["queue_url"])


def test_unknown_required_setting_is_a_programming_error() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'table'"):
        load_settings(FULL, ["table"])
