"""``[aws]``: a deployed stack's resources, found by the names the stack gives them."""

from __future__ import annotations

import pytest

from payhook.backends.aws.deployed import DeployedStack, StackNames
from payhook.config import parse_settings
from payhook.errors import ConfigError
from tests.aws.emulator import AwsStack


def test_names_derive_from_the_environment_suffix_as_the_stack_names_them() -> None:
    names = StackNames(environment="staging")
    assert names.table("webhooks") == "payhook-webhooks-staging"
    assert names.table("audit") == "payhook-audit-staging"
    assert names.queue("processing-dlq", None) == "payhook-processing-dlq-staging"
    assert names.key_id == "alias/payhook-audit-key-staging"
    given = StackNames(environment="staging", payments_table="ledger", audit_key_id="k")
    assert (given.table("payments"), given.key_id) == ("ledger", "k")


def test_queue_urls_are_looked_up_by_name_or_taken_as_given(stack: AwsStack) -> None:
    names = StackNames(processing_queue="payhook-processing", dead_letter_queue=stack.dlq_url)
    deployed = DeployedStack(names, clients=stack.clients)
    assert deployed.queue_url == stack.queue_url
    assert deployed.dead_letter_queue_url == stack.dlq_url


def test_the_aws_section_is_off_by_default_and_checked_like_every_section() -> None:
    assert parse_settings({}).aws.enabled is False
    aws = parse_settings({"aws": {"enabled": True, "region": "eu-west-1"}}).aws
    assert (aws.enabled, aws.region, aws.environment, aws.audit_shards) == (
        True,
        "eu-west-1",
        "dev",
        16,
    )
    with pytest.raises(ConfigError, match=r"aws\.region: got 'Europe'"):
        parse_settings({"aws": {"region": "Europe"}})
    with pytest.raises(ConfigError, match=r"aws\.audit_shards"):
        parse_settings({"aws": {"audit_shards": 0}})
    with pytest.raises(ConfigError, match="did you mean 'region'"):
        parse_settings({"aws": {"regoin": "eu-west-1"}})


def test_an_endpoint_url_addresses_every_client_there(aws_credentials: None) -> None:
    # An emulator on loopback; nothing is called here (clients connect on first use).
    deployed = DeployedStack(StackNames(), region="eu-west-1", endpoint_url="http://127.0.0.1:4566")
    for client in (deployed.clients.dynamodb, deployed.clients.sqs, deployed.clients.kms):
        assert client.meta.endpoint_url == "http://127.0.0.1:4566"
        assert client.meta.region_name == "eu-west-1"
    default = DeployedStack(StackNames(), region="us-east-2")
    assert default.clients.dynamodb.meta.endpoint_url == "https://dynamodb.us-east-2.amazonaws.com"
