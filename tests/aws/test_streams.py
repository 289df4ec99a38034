"""Stream records (as Lambda delivers them) -> audit changes and payment events to publish."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from payhook.backends.aws.streams import read_record
from payhook.core.audit import Change
from payhook.errors import ConfigError, PayloadError
from tests.aws.emulator import load_event

pytestmark = pytest.mark.aws

WEBHOOK_ID = "wh_ba0dce7d189fe188673390be1361ec22"
PAYMENT_KEY = "stripe/pi_3OCq8vJ9Xk2LmQ0a0f9e8d7c"


def records(name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = load_event(name)["Records"]
    return found


def test_webhook_records_become_the_changes_the_embedded_triggers_record() -> None:
    insert, enqueued, processed, expired = (
        read_record(r) for r in records("dynamodb_stream_webhooks.json")
    )
    ids = {"provider": "stripe", "eventId": "evt_3OCq8vJ9Xk2LmQ0a1b2c3d4e"}
    ids["eventType"] = "payment_intent.succeeded"
    assert insert.change == Change(
        "webhook", WEBHOOK_ID, "insert", {**ids, "status": "received"}, insert.source_id
    )
    assert enqueued.change is None  # enqueuedAt noted, status unchanged: not audited
    assert processed.change == Change(
        "webhook",
        WEBHOOK_ID,
        "modify",
        {**ids, "status": "processed", "previousStatus": "received"},
        processed.source_id,
    )
    assert expired.change is not None
    assert expired.change.action == "remove"
    assert expired.change.data == {**ids, "status": "processed", "expired": True}
    assert insert.publish == processed.publish == ()


def test_payment_records_carry_integer_amounts_and_only_newly_published_events() -> None:
    insert, refund = (read_record(r) for r in records("dynamodb_stream_payments.json"))
    assert insert.change == Change(
        "payment",
        PAYMENT_KEY,
        "insert",
        {
            "status": "succeeded",
            "amount": 4999,
            "currency": "EUR",
            "amountRefunded": 0,
            "version": 1,
        },
        insert.source_id,
    )
    assert refund.change is not None
    assert refund.change.data["amountRefunded"] == 1000
    assert refund.change.data["previousStatus"] == "succeeded"
    [first] = insert.publish
    [second] = refund.publish  # the old image's event was published with the insert
    assert first["status"] == "succeeded"
    assert (second["previousStatus"], second["status"]) == ("succeeded", "partially_refunded")
    assert first["id"] != second["id"]


def test_audit_data_holds_no_payload_and_no_float() -> None:
    every = records("dynamodb_stream_webhooks.json") + records("dynamodb_stream_payments.json")
    changes = [c for c in (read_record(r).change for r in every) if c is not None]
    assert len(changes) == 5
    for change in changes:
        assert "payload" not in change.data
        assert "record" not in change.data
        for value in change.data.values():
            assert value is None or type(value) in (str, int, bool)


def test_source_ids_are_distinct_per_record_and_stable_across_redelivery() -> None:
    every = records("dynamodb_stream_webhooks.json") + records("dynamodb_stream_payments.json")
    first = [read_record(r).source_id for r in every]
    again = [read_record(copy.deepcopy(r)).source_id for r in every]
    assert first == again
    assert len(set(first)) == len(every)


def test_payment_update_without_a_new_version_is_not_audited() -> None:
    record = records("dynamodb_stream_payments.json")[1]
    record["dynamodb"]["OldImage"]["version"] = record["dynamodb"]["NewImage"]["version"]
    assert read_record(record).change is None


def test_events_already_in_the_old_image_are_not_published_again() -> None:
    # An update that leaves publishedEvents alone (no new commit) must not publish anything.
    record = records("dynamodb_stream_payments.json")[1]
    record["dynamodb"]["NewImage"]["publishedEvents"] = record["dynamodb"]["OldImage"][
        "publishedEvents"
    ]
    assert read_record(record).publish == ()


def test_record_of_another_table_is_a_configuration_error() -> None:
    record = records("dynamodb_stream_payments.json")[0]
    record["dynamodb"]["Keys"] = {"orderId": {"S": "o_1"}}
    with pytest.raises(ConfigError, match="orderId"):
        read_record(record)


def test_malformed_records_raise_payload_error() -> None:
    no_status = records("dynamodb_stream_payments.json")[0]
    del no_status["dynamodb"]["NewImage"]["amount"]
    with pytest.raises(PayloadError, match="malformed"):
        read_record(no_status)
    no_id = records("dynamodb_stream_webhooks.json")[0]
    del no_id["eventID"]
    with pytest.raises(PayloadError, match="eventID"):
        read_record(no_id)
    bad_events = records("dynamodb_stream_payments.json")[0]
    bad_events["dynamodb"]["NewImage"]["publishedEvents"] = {"S": "{not json"}
    with pytest.raises(PayloadError):
        read_record(bad_events)
