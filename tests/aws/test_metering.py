"""The capacity arithmetic the cost test relies on, checked against DynamoDB's sizing rules."""

from __future__ import annotations

import pytest

from tests.aws.metering import index_writes, item_size, number_size, read_units, write_units

pytestmark = pytest.mark.aws


@pytest.mark.parametrize(
    ("number", "size"),
    [("0", 2), ("7", 2), ("1000", 2), ("12345", 4), ("-1.50", 2), ("1700000000.25", 7)],
)
def test_a_number_costs_one_byte_per_two_significant_digits_plus_one(
    number: str, size: int
) -> None:
    assert number_size(number) == size


def test_an_item_is_the_sum_of_its_names_and_values() -> None:
    item = {
        "webhookId": {"S": "wh_1"},  # 9 + 4
        "payload": {"B": b"x" * 100},  # 7 + 100
        "verified": {"BOOL": True},  # 8 + 1
        "tags": {"L": [{"S": "ab"}, {"NULL": True}]},  # 4 + 3 + (2 + 1) + (1 + 1)
        "meta": {"M": {"k": {"S": "v"}}},  # 4 + 3 + (1 + 1 + 1)
    }
    assert item_size(item) == 13 + 107 + 9 + 12 + 10


def test_writes_round_up_per_kilobyte_of_the_larger_image_and_reads_per_4_kb() -> None:
    small, large = {"k": {"S": "x" * 100}}, {"k": {"S": "x" * 2000}}
    assert write_units(None, small) == 1
    assert write_units(large, small) == 2  # the item before counts as much as after
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(0, consistent=False) == 0.5  # nothing found still costs a unit


def testindex_writes_follow_the_index_key() -> None:
    received = {
        "webhookId": {"S": "a"},
        "statusShard": {"S": "received#3"},
        "receivedAt": {"N": "1"},
    }
    processed = {**received, "statusShard": {"S": "processed#3"}}
    keys = ("statusShard", "receivedAt")
    assert index_writes(None, received, keys) == 1  # put
    assert index_writes(received, {**received, "note": {"S": "x"}}, keys) == 0  # keys only
    assert index_writes(received, processed, keys) == 2  # delete + put
    assert index_writes(received, None, keys) == 1  # delete
    assert index_writes(None, {"webhookId": {"S": "a"}}, ("unsignedEventKey",)) == 0  # sparse
