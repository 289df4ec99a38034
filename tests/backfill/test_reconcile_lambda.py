"""The reconcile Lambda on moto: a Stripe event never delivered is fetched from the (loopback)
events API, stored through DynamoDB + SQS as the receiver stores, processed once, and counted
in the ``MissedEvents`` metric; an event already delivered is a duplicate."""

from __future__ import annotations

import io
import json
import time

import pytest

from payhook.core.model import webhook_id_for
from payhook.errors import PayhookError
from payhook.runtimes.aws_lambda.reconcile import reconcile_from_environment
from tests.aws.emulator import STRIPE_SECRET, AwsStack, stripe_body
from tests.aws.flows import deliver, make_processor, set_providers, webhook_status
from tests.backfill.fakes import FakeStripe, serving
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws

KEY = "sk_test_reconcile_lambda_key_01"


def metrics(out: io.StringIO) -> dict[str, int]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "payhook" for line in lines)
    return {line["provider"]: line["MissedEvents"] for line in lines}


def test_a_scheduled_run_stores_the_missed_event_and_counts_it(stack: AwsStack) -> None:
    clock = FakeClock(time.time())
    delivered = json.loads(stripe_body("evt_delivered_1", "pi_reconcile_1"))
    missed = json.loads(stripe_body("evt_missed_1", "pi_reconcile_2"))
    for event in (delivered, missed):
        event["created"] = int(clock.now) - 60
    api = FakeStripe(KEY, [delivered, missed])
    with serving(api) as base:
        section = {"secrets": [STRIPE_SECRET], "api_key": KEY, "api_base": base}
        set_providers(stack, {"stripe": section})
        deliver(stack, clock, json.dumps(delivered).encode())
        out = io.StringIO()
        run = reconcile_from_environment(stack.env, stack.clients, clock, metrics_out=out)
        report = run.run()
        assert report["stripe"]["newEventIds"] == ["evt_missed_1"]
        assert report["stripe"]["duplicates"] == 1
        assert metrics(out) == {"stripe": 1}
        again = io.StringIO()
        run.metrics_out = again
        assert run.run()["stripe"]["new"] == 0
        assert metrics(again) == {"stripe": 0}

    missed_id = webhook_id_for("stripe", "evt_missed_1")
    assert stack.webhook_item(missed_id)["source"] == {"S": "api"}  # type: ignore[index]
    assert "source" not in stack.webhook_item(webhook_id_for("stripe", "evt_delivered_1"))  # type: ignore[operator]
    processor = make_processor(stack, clock)
    stack.poll_processor(processor.handle)
    stack.poll_processor(processor.handle)
    assert webhook_status(stack, missed_id) == "processed"


def test_a_provider_refusing_the_key_fails_the_invocation(stack: AwsStack) -> None:
    with serving(FakeStripe("sk_test_not_the_configured_key")) as base:
        section = {"secrets": [STRIPE_SECRET], "api_key": KEY, "api_base": base}
        set_providers(stack, {"stripe": section})
        out = io.StringIO()
        run = reconcile_from_environment(stack.env, stack.clients, FakeClock(), metrics_out=out)
        with pytest.raises(PayhookError, match="reconciliation failed for: stripe"):
            run.run()
    assert metrics(out) == {"stripe": 0}
