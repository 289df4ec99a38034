"""Fixtures for the AWS tests: the moto emulator in-process, and the handlers' environment."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from payhook.backends.aws.clients import reset_default_clients
from payhook.runtimes.aws_lambda import audit as audit_lambda
from payhook.runtimes.aws_lambda import processor as processor_lambda
from payhook.runtimes.aws_lambda import receiver as receiver_lambda
from payhook.runtimes.aws_lambda import sweeper as sweeper_lambda
from tests.aws.emulator import REGION, AwsStack, create_stack


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def stack(aws_credentials: None) -> Iterator[AwsStack]:
    with mock_aws():
        yield create_stack(boto3.session.Session(region_name=REGION))


@pytest.fixture
def lambda_env(stack: AwsStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsStack]:
    """The deployed handlers' view: contract variables in os.environ, process-wide clients."""
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    caches = (
        receiver_lambda.receiver,
        processor_lambda.processor,
        audit_lambda.auditor,
        sweeper_lambda.sweeper,
    )
    for cache in caches:
        cache.cache_clear()
    reset_default_clients()
    yield stack
    for cache in caches:
        cache.cache_clear()
    reset_default_clients()
