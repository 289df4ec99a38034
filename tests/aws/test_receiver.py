"""The receiver Lambda: what a provider's delivery leaves in DynamoDB and SQS, and the answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from payhook.backends.aws.clients import AwsClients
from payhook.core.model import webhook_id_for
from payhook.runtimes.aws_lambda import receiver as receiver_lambda
from payhook.runtimes.aws_lambda.processor import SqsProcessor
from payhook.runtimes.aws_lambda.receiver import PROVIDERS_UNUSABLE, Receiver
from tests.aws.emulator import AwsStack, load_event, stripe_body, stripe_delivery
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws

RECORDED = "apigw_stripe_payment_intent_succeeded.json"
RECORDED_WEBHOOK_ID = webhook_id_for("stripe", "evt_3OCq8vJ9Xk2LmQ0a1b2c3d4e")


def make_receiver(stack: AwsStack, clock: FakeClock, **env: str) -> Receiver:
    return Receiver.from_environment({**stack.env, **env}, stack.clients, clock)


def body_of(answer: dict[str, object]) -> dict[str, object]:
    data: dict[str, object] = json.loads(str(answer["body"]))
    return data


def test_recorded_stripe_delivery_is_stored_then_enqueued_then_acknowledged(
    stack: AwsStack, clock: FakeClock
) -> None:
    event = load_event(RECORDED)
    answer = make_receiver(stack, clock).handle(event)

    assert answer["statusCode"] == 200
    assert body_of(answer)["duplicate"] is False
    item = stack.webhook_item(RECORDED_WEBHOOK_ID)
    assert item is not None
    assert item["status"]["S"] == "received"
    assert item["eventType"]["S"] == "payment_intent.succeeded"
    assert item["payload"]["B"] == base64.b64decode(event["body"])
    assert float(item["receivedAt"]["N"]) == clock.now
    assert int(item["expiresAt"]["N"]) == int(clock.now) + 30 * 86_400
    assert float(item["enqueuedAt"]["N"]) == clock.now
    [message] = stack.receive(stack.queue_url)
    assert json.loads(message["Body"]) == {"webhookId": RECORDED_WEBHOOK_ID}


def test_retention_setting_sets_the_ttl_attribute(stack: AwsStack, clock: FakeClock) -> None:
    receiver = make_receiver(stack, clock, PAYHOOK_RAW_PAYLOAD_RETENTION_DAYS="7")
    receiver.handle(load_event(RECORDED))
    item = stack.webhook_item(RECORDED_WEBHOOK_ID)
    assert item is not None
    assert int(item["expiresAt"]["N"]) == int(clock.now) + 7 * 86_400


def test_text_body_not_base64_encoded_is_verified_on_its_utf8_bytes(
    stack: AwsStack, clock: FakeClock
) -> None:
    body = stripe_body("evt_text_1", "pi_text_1")
    event = stripe_delivery(body, int(clock.now))
    event["body"], event["isBase64Encoded"] = body.decode(), False
    assert make_receiver(stack, clock).handle(event)["statusCode"] == 200
    assert stack.webhook_item(webhook_id_for("stripe", "evt_text_1")) is not None


def test_tampered_signature_is_rejected_and_nothing_is_stored(
    stack: AwsStack, clock: FakeClock
) -> None:
    event = load_event(RECORDED)
    body = base64.b64decode(event["body"]).replace(b"4999", b"9999")
    event["body"] = base64.b64encode(body).decode()

    answer = make_receiver(stack, clock).handle(event)

    assert answer["statusCode"] == 401
    assert body_of(answer)["error"] == "verification_failed"
    assert stack.webhook_item(RECORDED_WEBHOOK_ID) is None
    assert stack.queue_depth(stack.queue_url) == 0


def test_expired_signature_is_rejected(stack: AwsStack, clock: FakeClock) -> None:
    clock.advance(301)
    answer = make_receiver(stack, clock).handle(load_event(RECORDED))
    assert answer["statusCode"] == 401
    assert "older than the tolerance" in str(body_of(answer)["reason"])


def test_unknown_provider_is_404(stack: AwsStack, clock: FakeClock) -> None:
    event = load_event(RECORDED)
    event["pathParameters"] = {"provider": "acme"}
    answer = make_receiver(stack, clock).handle(event)
    assert answer["statusCode"] == 404
    assert body_of(answer)["error"] == "unknown_provider"


def test_body_over_the_limit_is_413_and_nothing_is_stored(
    stack: AwsStack, clock: FakeClock
) -> None:
    event = load_event(RECORDED)
    size = len(base64.b64decode(event["body"]))
    receiver = make_receiver(stack, clock, PAYHOOK_BODY_LIMIT_BYTES=str(size - 1))
    assert receiver.handle(event)["statusCode"] == 413
    assert stack.webhook_item(RECORDED_WEBHOOK_ID) is None
    exact = make_receiver(stack, clock, PAYHOOK_BODY_LIMIT_BYTES=str(size))
    assert exact.handle(load_event(RECORDED))["statusCode"] == 200


def test_body_that_is_not_base64_is_400(stack: AwsStack, clock: FakeClock) -> None:
    event = load_event(RECORDED)
    event["body"] = "not*base64"
    answer = make_receiver(stack, clock).handle(event)
    assert answer["statusCode"] == 400
    assert body_of(answer)["error"] == "invalid_payload"


def test_authentic_body_that_is_not_json_is_400(stack: AwsStack, clock: FakeClock) -> None:
    answer = make_receiver(stack, clock).handle(stripe_delivery(b"not json", int(clock.now)))
    assert answer["statusCode"] == 400
    assert body_of(answer)["error"] == "invalid_payload"


def test_missing_table_is_503_and_nothing_is_enqueued(stack: AwsStack, clock: FakeClock) -> None:
    stack.clients.dynamodb.delete_table(TableName=stack.webhooks_table)
    answer = make_receiver(stack, clock).handle(load_event(RECORDED))
    assert answer["statusCode"] == 503
    assert answer["headers"]["Retry-After"] == "5"
    assert stack.queue_depth(stack.queue_url) == 0


def unusable_secret_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        getattr(r, "secret", "")
        for r in caplog.records
        if r.name == "payhook.aws.receiver" and r.getMessage() == PROVIDERS_UNUSABLE
    ]


def test_unreadable_provider_secret_is_503(
    stack: AwsStack, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stack.client("secretsmanager").delete_secret(
        SecretId=stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"], ForceDeleteWithoutRecovery=True
    )
    answer = make_receiver(stack, clock).handle(load_event(RECORDED))
    assert answer["statusCode"] == 503
    assert stack.webhook_item(RECORDED_WEBHOOK_ID) is None
    assert unusable_secret_lines(caplog) == ["unreadable"]


@pytest.mark.parametrize(
    "secret",
    [
        '{"providers": {}}',  # the stack's placeholder: nothing loaded yet
        "not json",
        '{"providers": {"stripe": {"secrets": ["whsec_too_short"]}}}',
    ],
)
def test_a_provider_secret_not_loaded_or_malformed_is_503_until_it_is_fixed(
    stack: AwsStack, clock: FakeClock, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    secret_arn = stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"]
    good = stack.clients.secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"]
    stack.clients.secretsmanager.put_secret_value(SecretId=secret_arn, SecretString=secret)
    receiver = make_receiver(stack, clock)

    answer = receiver.handle(load_event(RECORDED))

    # Not a 500: nothing is wrong with the delivery, and the provider should retry it.
    assert answer["statusCode"] == 503
    assert answer["headers"]["Retry-After"] == "5"
    assert body_of(answer)["error"] == "storage_unavailable"
    assert stack.webhook_item(RECORDED_WEBHOOK_ID) is None
    assert unusable_secret_lines(caplog) == ["malformed"]
    assert "whsec_too_short" not in caplog.text
    # Loaded: the next delivery is served at once (a failed read is not cached).
    stack.clients.secretsmanager.put_secret_value(SecretId=secret_arn, SecretString=good)
    assert receiver.handle(load_event(RECORDED))["statusCode"] == 200


def test_webhook_stored_but_never_enqueued_is_enqueued_when_the_provider_retries(
    stack: AwsStack, clock: FakeClock
) -> None:
    # The first attempt stores the item, then SQS fails (as if the Lambda died in between).
    gone = stack.queue_url.rsplit("/", 1)[0] + "/payhook-no-such-queue"
    first = make_receiver(stack, clock, PAYHOOK_QUEUE_URL=gone).handle(load_event(RECORDED))
    assert first["statusCode"] == 503
    item = stack.webhook_item(RECORDED_WEBHOOK_ID)
    assert item is not None
    assert item["status"]["S"] == "received"
    assert "enqueuedAt" not in item
    assert stack.queue_depth(stack.queue_url) == 0

    clock.advance(60)
    retry = make_receiver(stack, clock).handle(load_event(RECORDED))

    assert retry["statusCode"] == 200
    assert body_of(retry)["duplicate"] is True
    [message] = stack.receive(stack.queue_url)
    assert json.loads(message["Body"]) == {"webhookId": RECORDED_WEBHOOK_ID}
    item = stack.webhook_item(RECORDED_WEBHOOK_ID)
    assert item is not None
    assert float(item["enqueuedAt"]["N"]) == clock.now


def test_duplicate_of_a_processed_webhook_is_acknowledged_and_changes_nothing(
    stack: AwsStack, clock: FakeClock
) -> None:
    receiver = make_receiver(stack, clock)
    assert receiver.handle(load_event(RECORDED))["statusCode"] == 200
    processor = SqsProcessor.from_environment(stack.env, stack.clients, clock)
    assert stack.poll_processor(processor.handle)["batchItemFailures"] == []
    before = stack.webhook_item(RECORDED_WEBHOOK_ID)
    payments_before = stack.payment_items()

    clock.advance(30)
    again = receiver.handle(load_event(RECORDED))

    assert again["statusCode"] == 200
    assert body_of(again)["duplicate"] is True
    assert stack.queue_depth(stack.queue_url) == 0
    assert stack.webhook_item(RECORDED_WEBHOOK_ID) == before
    assert stack.payment_items() == payments_before


def test_braintree_challenge_get_is_answered_as_the_sdk_would(
    stack: AwsStack, clock: FakeClock
) -> None:
    # API Gateway routes GET /webhook/{provider} here (infra/constructs/api.py).
    private_key, challenge = "braintree-private-key-0123456789", "20f9f8ed05f77439fe955c977e4c8a53"
    braintree = {"secrets": [private_key], "public_key": "pk_payhook"}
    stack.clients.secretsmanager.put_secret_value(
        SecretId=stack.env["PAYHOOK_PROVIDERS_SECRET_ARN"],
        SecretString=json.dumps({"providers": {"braintree": braintree}}),
    )
    event = load_event(RECORDED)
    event.update(
        httpMethod="GET",
        body=None,
        isBase64Encoded=False,
        pathParameters={"provider": "braintree"},
        queryStringParameters={"bt_challenge": challenge},
        multiValueQueryStringParameters={"bt_challenge": [challenge]},
    )

    answer = make_receiver(stack, clock).handle(event)

    key = hashlib.sha1(private_key.encode()).digest()  # noqa: S324 - Braintree's scheme
    expected = hmac.new(key, challenge.encode(), hashlib.sha1).hexdigest()
    assert (answer["statusCode"], answer["body"]) == (200, f"pk_payhook|{expected}")
    assert stack.queue_depth(stack.queue_url) == 0


def test_get_is_answered_405_for_a_provider_without_a_challenge(
    stack: AwsStack, clock: FakeClock
) -> None:
    event = load_event(RECORDED)
    event["httpMethod"], event["body"] = "GET", None
    assert make_receiver(stack, clock).handle(event)["statusCode"] == 405


def test_module_handler_builds_its_receiver_once_from_the_environment(
    lambda_env: AwsStack, clock: FakeClock
) -> None:
    first = receiver_lambda.receiver()
    assert receiver_lambda.receiver() is first
    assert first.settings.webhooks_table == lambda_env.webhooks_table
    event = load_event(RECORDED)
    event["pathParameters"] = {"provider": "acme"}
    assert receiver_lambda.handler(event, None)["statusCode"] == 404


def test_injected_clients_are_the_ones_used(stack: AwsStack, clock: FakeClock) -> None:
    clients = AwsClients(stack.session)
    receiver = Receiver.from_environment(stack.env, clients, clock)
    assert receiver.handle(load_event(RECORDED))["statusCode"] == 200
    assert receiver.secret.client is clients.secretsmanager
