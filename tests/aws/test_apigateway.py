"""The API Gateway adapter: exact body bytes, first header value, the public URL, responses."""

from __future__ import annotations

import base64

import pytest

from payhook.providers.base import ProviderResponse
from payhook.runtimes.aws_lambda import apigateway as api
from tests.aws.emulator import load_event

pytestmark = pytest.mark.aws

RECORDED = "apigw_stripe_payment_intent_succeeded.json"


def test_recorded_event_becomes_the_request_the_provider_sent() -> None:
    event = load_event(RECORDED)
    body = api.body_bytes(event, 1 << 20)
    request = api.webhook_request(event, body)
    assert body == base64.b64decode(event["body"])
    assert body.startswith(b'{\n  "id": "evt_')
    assert request.header("Stripe-Signature") == event["headers"]["Stripe-Signature"]
    assert request.method == "POST"
    assert (
        request.url == "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod/webhook/stripe"
    )
    assert api.provider_name(event) == "stripe"


def test_repeated_header_and_query_parameter_take_their_first_value() -> None:
    event = load_event(RECORDED)
    event["multiValueHeaders"]["X-Custom"] = ["first", "second"]
    event["headers"]["X-Custom"] = "second"  # API Gateway keeps the last one here
    event["multiValueQueryStringParameters"] = {"token": ["a b", "c"]}
    event["queryStringParameters"] = {"token": "c"}
    request = api.webhook_request(event, b"")
    assert request.header("x-custom") == "first"
    assert request.query == {"token": "a b"}
    assert request.url.endswith("/prod/webhook/stripe?token=a+b")


def test_event_without_headers_or_body_is_still_a_request() -> None:
    event = {"httpMethod": "POST", "path": "/webhook/x", "headers": None, "body": None}
    assert api.body_bytes(event, 10) == b""
    request = api.webhook_request(event, b"")
    assert (request.headers, request.query) == ({}, {})


@pytest.mark.parametrize(("size", "too_large"), [(30, False), (31, True)])
def test_body_limit_counts_decoded_bytes(size: int, too_large: bool) -> None:
    event = {"body": base64.b64encode(b"x" * size).decode(), "isBase64Encoded": True}
    if too_large:
        with pytest.raises(api.BodyTooLargeError):
            api.body_bytes(event, 30)
    else:
        assert len(api.body_bytes(event, 30)) == size


def test_huge_base64_body_is_refused_before_decoding() -> None:
    event = {"body": "!" * 1000, "isBase64Encoded": True}  # invalid, but too long to look at
    with pytest.raises(api.BodyTooLargeError):
        api.body_bytes(event, 100)


def test_text_body_limit_counts_utf8_bytes() -> None:
    with pytest.raises(api.BodyTooLargeError):
        api.body_bytes({"body": "é" * 6, "isBase64Encoded": False}, 11)


def test_invalid_base64_is_a_bad_body() -> None:
    with pytest.raises(api.BadBodyError, match="base64"):
        api.body_bytes({"body": "abc$", "isBase64Encoded": True}, 100)


def test_binary_response_body_is_base64_encoded() -> None:
    answer = api.response(ProviderResponse(200, b"\xff\x00", "application/octet-stream"))
    assert answer["isBase64Encoded"] is True
    assert base64.b64decode(answer["body"]) == b"\xff\x00"
    text = api.error(503, "storage_unavailable", "try again later", **{"Retry-After": "5"})
    assert text["headers"] == {"Content-Type": "application/json", "Retry-After": "5"}
    assert text["body"] == '{"error":"storage_unavailable","reason":"try again later"}'
