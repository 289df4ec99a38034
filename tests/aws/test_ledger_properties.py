"""The ledger's order-independence property, on the AWS backend (moto, real handlers).

The same generated Stripe histories as the SQLite property (tests/service/test_process.py)
are delivered through the receiver Lambda and processed by the processor Lambda, in order and
in a shuffled order with duplicates: both end in the same payment item, each webhook
processed once, one pending canonical event per ledger change.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from payhook.core.ledger import PaymentRecord
from payhook.runtimes.aws_lambda.processor import SqsProcessor
from payhook.runtimes.aws_lambda.receiver import Receiver
from tests.aws.emulator import REGION, AwsStack, create_stack, stripe_delivery
from tests.conftest import FakeClock
from tests.service.test_process import stripe_histories

pytestmark = pytest.mark.aws


def run(deliveries: list[dict[str, Any]]) -> tuple[PaymentRecord, list[dict[str, Any]]]:
    """Deliver and process one by one on a fresh emulated stack; the final payment and the
    canonical events published along the way (one per ledger change)."""
    with mock_aws():
        stack: AwsStack = create_stack(boto3.session.Session(region_name=REGION))
        clock = FakeClock()
        receiver = Receiver.from_environment(stack.env, stack.clients, clock)
        processor = SqsProcessor.from_environment(stack.env, stack.clients, clock)
        published: list[dict[str, Any]] = []
        for event in deliveries:
            clock.now = float(event["created"])
            body = json.dumps(event).encode()
            answer = receiver.handle(stripe_delivery(body, int(clock.now)))
            assert answer["statusCode"] == 200
            result = stack.poll_processor(processor.handle)
            assert result["batchItemFailures"] == []
            [item] = stack.payment_items()
            published += [e for e in json.loads(item["publishedEvents"]["S"]) if e not in published]
        [item] = stack.payment_items()
        return PaymentRecord.from_dict(json.loads(item["record"]["S"])), published


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stripe_histories(), st.data())
def test_any_arrival_order_with_duplicates_ends_in_the_in_order_payment_item(
    history: list[dict[str, Any]], data: st.DataObject
) -> None:
    repeats = data.draw(st.lists(st.sampled_from(history), max_size=3))
    arrival = data.draw(st.permutations(history + repeats))
    expected, _ = run(history)
    actual, published = run(arrival)
    assert actual.state() == expected.state()
    assert actual.events == expected.events
    # Every published event is a distinct ledger change, and the last one is the final row.
    assert len({e["id"] for e in published}) == len(published)
    assert published[-1]["status"] == str(actual.status)
