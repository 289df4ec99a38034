"""AwsClients: created lazily, once, without calling the network; injectable."""

from __future__ import annotations

import boto3
import pytest

from payhook.backends.aws.clients import AwsClients, default_clients, reset_default_clients

pytestmark = pytest.mark.aws


def test_each_client_is_created_once_and_shared(aws_credentials: None) -> None:
    clients = AwsClients(boto3.session.Session(region_name="eu-west-1"))
    assert clients.dynamodb is clients.dynamodb
    assert clients.sqs.meta.service_model.service_name == "sqs"
    assert clients.events.meta.region_name == "eu-west-1"
    assert clients.dynamodb.meta.config.retries["mode"] == "standard"


def test_given_clients_are_used_instead_of_created(aws_credentials: None) -> None:
    ready = boto3.session.Session(region_name="eu-west-1").client("sqs")
    assert AwsClients(sqs=ready).sqs is ready


def test_default_clients_live_until_reset(aws_credentials: None) -> None:
    reset_default_clients()
    first = default_clients()
    assert default_clients() is first
    reset_default_clients()
    assert default_clients() is not first
    reset_default_clients()
