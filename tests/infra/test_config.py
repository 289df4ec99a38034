"""Deployment settings: defaults, early validation ("got X, expected Y"), CDK context."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import RemovalPolicy

from infra.config import PayhookSettings, SettingsError

pytestmark = pytest.mark.infra


def context(values: dict[str, Any]) -> Any:
    return values.get


def test_defaults_describe_a_small_dev_deployment() -> None:
    settings = PayhookSettings()

    assert settings.environment_suffix == "dev"
    assert settings.reserved_concurrency is None
    assert not settings.is_production
    assert settings.removal_policy == RemovalPolicy.DESTROY
    assert settings.effective_log_retention_days == 30
    assert settings.name("webhooks") == "payhook-webhooks-dev"


@pytest.mark.parametrize("suffix", ["prod", "production", "live"])
def test_production_like_suffixes_retain_resources(suffix: str) -> None:
    settings = PayhookSettings(environment_suffix=suffix)

    assert settings.is_production
    assert settings.removal_policy == RemovalPolicy.RETAIN
    assert settings.effective_log_retention_days == 365


def test_the_production_suffix_list_is_configurable() -> None:
    settings = PayhookSettings(environment_suffix="eu1", production_suffixes=("eu1", "us1"))

    assert settings.is_production
    assert not PayhookSettings(environment_suffix="prod", production_suffixes=()).is_production


@pytest.mark.parametrize(
    "suffix",
    ["", "Prod", "1prod", "prod-", "pr_od", "pr od", "a" * 17, "prod\n"],
)
def test_rejects_suffixes_that_cannot_name_every_resource(suffix: str) -> None:
    with pytest.raises(SettingsError, match=r"environment_suffix: got .*, expected 1-16 lowercase"):
        PayhookSettings(environment_suffix=suffix)


def test_rejects_a_suffix_that_is_not_a_string() -> None:
    with pytest.raises(SettingsError, match="got 7, expected"):
        PayhookSettings(environment_suffix=7)  # type: ignore[arg-type]


def test_rejects_reserved_concurrency_below_the_queue_consumers_concurrency() -> None:
    # Fewer reserved executions than SQS pollers would throttle the processor and push
    # healthy messages towards the dead-letter queue.
    with pytest.raises(
        SettingsError, match=r"reserved_concurrency: got 5, expected an integer from 10"
    ):
        PayhookSettings(reserved_concurrency=5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("processor_max_concurrency", 1, "from 2 to 1000"),
        ("waf_rate_limit_per_60s", 5, "from 10 to"),
        ("api_throttle_burst", 0, "from 1 to"),
        ("receiver_timeout_seconds", 30, "from 1 to 29"),  # API Gateway gives up at 29 s
        ("processor_memory_mb", 64, "from 128 to 10240"),
        ("secret_cache_seconds", True, "got True"),
        ("raw_payload_retention_days", "30", "got '30'"),
    ],
)
def test_rejects_out_of_range_numbers(field: str, value: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=rf"{field}: .*{message}"):
        PayhookSettings(**{field: value})


def test_rejects_a_retention_cloudwatch_logs_does_not_offer() -> None:
    with pytest.raises(SettingsError, match=r"log_retention_days: got 31, expected one of"):
        PayhookSettings(log_retention_days=31)


def test_rejects_an_alert_address_that_is_not_an_email() -> None:
    with pytest.raises(SettingsError, match="alert_email: got 'ops', expected an e-mail"):
        PayhookSettings(alert_email="ops")


def test_visibility_timeout_is_six_times_the_processor_timeout() -> None:
    assert (
        PayhookSettings(processor_timeout_seconds=45).processing_visibility_timeout_seconds == 270
    )


def test_reads_per_deployment_values_from_cdk_context() -> None:
    settings = PayhookSettings.from_context(
        context(
            {
                "environmentSuffix": "staging",
                "productionSuffixes": "staging, prod",
                "reservedConcurrency": "25",  # `-c reservedConcurrency=25` is a string
                "alertEmail": "oncall@example.com",
            }
        )
    )

    assert settings.environment_suffix == "staging"
    assert settings.production_suffixes == ("staging", "prod")
    assert settings.is_production
    assert settings.reserved_concurrency == 25
    assert settings.alert_email == "oncall@example.com"


def test_context_defaults_to_dev_and_overrides_win() -> None:
    settings = PayhookSettings.from_context(context({}), api_throttle_burst=50)

    assert settings.environment_suffix == "dev"
    assert settings.api_throttle_burst == 50


def test_rejects_context_concurrency_that_is_not_a_number() -> None:
    with pytest.raises(SettingsError, match="reservedConcurrency: got 'many', expected an integer"):
        PayhookSettings.from_context(context({"reservedConcurrency": "many"}))


def test_validates_context_values_like_python_ones() -> None:
    with pytest.raises(SettingsError, match="environment_suffix: got 'PROD'"):
        PayhookSettings.from_context(context({"environmentSuffix": "PROD"}))


CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("processor_batching_window_seconds", 301, "from 0 to 300"),
        ("audit_batching_window_seconds", -1, "from 0 to 300"),
        ("sweep_every_minutes", 0, "from 1 to 60"),
        ("sweep_after_seconds", 59, "from 60 to 86400"),
        ("dead_letter_age_alarm_seconds", 15 * 86_400, "from 60 to 1209600"),
        ("audit_iterator_age_alarm_seconds", 10, "from 60 to 86400"),
        ("waf_blocked_alarm_threshold", 0, "from 1 to"),
    ],
)
def test_rejects_out_of_range_windows_sweeps_and_alarm_thresholds(
    field: str, value: Any, message: str
) -> None:
    with pytest.raises(SettingsError, match=rf"{field}: got {value}, expected .*{message}"):
        PayhookSettings(**{field: value})


def test_custom_domain_needs_a_host_name_and_a_certificate_together() -> None:
    settings = PayhookSettings(domain_name="hooks.example.com", certificate_arn=CERTIFICATE)
    assert (settings.domain_name, settings.certificate_arn) == ("hooks.example.com", CERTIFICATE)

    with pytest.raises(SettingsError, match="certificate_arn: got None, expected an ACM"):
        PayhookSettings(domain_name="hooks.example.com")
    with pytest.raises(SettingsError, match="domain_name: got None, expected a lowercase host"):
        PayhookSettings(certificate_arn=CERTIFICATE)
    with pytest.raises(SettingsError, match=r"domain_name: got 'Hooks\.Example\.com'"):
        PayhookSettings(domain_name="Hooks.Example.com", certificate_arn=CERTIFICATE)
    with pytest.raises(SettingsError, match="certificate_arn: got 'arn:aws:iam::1:x'"):
        PayhookSettings(domain_name="hooks.example.com", certificate_arn="arn:aws:iam::1:x")


def test_reads_the_domain_and_the_logging_role_opt_in_from_cdk_context() -> None:
    settings = PayhookSettings.from_context(
        context(
            {
                "domainName": "hooks.example.com",
                "certificateArn": CERTIFICATE,
                "apiGatewayCloudWatchRole": "true",  # `-c apiGatewayCloudWatchRole=true`
            }
        )
    )

    assert settings.domain_name == "hooks.example.com"
    assert settings.api_gateway_cloudwatch_role is True
    assert PayhookSettings().api_gateway_cloudwatch_role is False  # opt-in
    assert not PayhookSettings.from_context(
        context({"apiGatewayCloudWatchRole": False})
    ).api_gateway_cloudwatch_role
    with pytest.raises(SettingsError, match="apiGatewayCloudWatchRole: got 'yes', expected true"):
        PayhookSettings.from_context(context({"apiGatewayCloudWatchRole": "yes"}))


def test_audit_shards_come_from_python_or_context_and_stay_within_bounds() -> None:
    assert PayhookSettings().audit_shards == 16
    assert PayhookSettings.from_context(context({"auditShards": "32"})).audit_shards == 32
    for wrong in (0, 65):
        with pytest.raises(SettingsError, match=f"audit_shards: got {wrong}, expected an integer"):
            PayhookSettings(audit_shards=wrong)
