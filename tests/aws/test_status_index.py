"""The write-sharded ``byStatus`` index on moto: every write that sets ``status`` sets its
shard key too, webhooks spread over the shards, and the readers see every shard."""

from __future__ import annotations

from collections import Counter

import pytest

from payhook.backends.aws.reader import CursorError, DynamoReader
from payhook.backends.aws.redrive import redrive_webhooks
from payhook.backends.aws.replay import replay_webhook
from payhook.backends.aws.status_index import (
    STATUS_SHARDS,
    decode_positions,
    encode_positions,
    shard_of,
)
from payhook.core.model import webhook_id_for
from payhook.core.queries import WebhookQuery
from tests.aws.emulator import AwsStack, stripe_body
from tests.aws.flows import (
    SECRET_CACHE_EXPIRY,
    STRIPE_ONLY,
    STRIPE_RENAMED,
    deliver,
    make_processor,
    process_until_dead_lettered,
    set_providers,
)
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def shard_keys_by_id(stack: AwsStack) -> dict[str, tuple[str, str]]:
    """webhookId -> (status, statusShard) of every stored webhook."""
    items = stack.clients.dynamodb.scan(TableName=stack.webhooks_table)["Items"]
    return {i["webhookId"]["S"]: (i["status"]["S"], i["statusShard"]["S"]) for i in items}


def assert_keys_follow_status(stack: AwsStack) -> None:
    for webhook_id, (status, shard) in shard_keys_by_id(stack).items():
        assert shard == f"{status}#{shard_of(webhook_id)}", webhook_id


def reader(stack: AwsStack) -> DynamoReader:
    return DynamoReader(
        stack.clients.dynamodb,
        webhooks_table=stack.webhooks_table,
        payments_table=stack.payments_table,
    )


def test_webhooks_spread_over_the_shards_of_their_status(stack: AwsStack, clock: FakeClock) -> None:
    for i in range(32):
        deliver(stack, clock, stripe_body(f"evt_spread_{i}", f"pi_spread_{i}"))
        clock.advance(1)

    keys = shard_keys_by_id(stack)
    per_shard = Counter(shard for _, shard in keys.values())
    assert len(keys) == 32
    assert len(per_shard) >= 8  # 32 webhooks over 16 keys: no single hot key
    assert max(per_shard.values()) <= 8
    assert all(shard.startswith("received#") for shard in per_shard)
    assert_keys_follow_status(stack)
    assert reader(stack).webhooks(WebhookQuery(status="received", limit=100)).total == 32


def test_every_status_change_moves_the_shard_key_with_it(stack: AwsStack, clock: FakeClock) -> None:
    deliver(stack, clock, stripe_body("evt_keys_ok", "pi_keys_ok"))
    deliver(stack, clock, stripe_body("evt_keys_poison", "pi_keys_poison"))
    stack.poll_processor(make_processor(stack, clock).handle)  # both processed
    ok, poison = (webhook_id_for("stripe", e) for e in ("evt_keys_ok", "evt_keys_poison"))
    assert shard_keys_by_id(stack)[ok] == ("processed", f"processed#{shard_of(ok)}")

    assert replay_webhook(  # processed -> received
        stack.clients.dynamodb,
        stack.clients.sqs,
        webhooks_table=stack.webhooks_table,
        queue_url=stack.queue_url,
        webhook_id=poison,
        clock=clock,
    )
    assert shard_keys_by_id(stack)[poison] == ("received", f"received#{shard_of(poison)}")
    set_providers(stack, STRIPE_RENAMED)
    clock.advance(SECRET_CACHE_EXPIRY)
    process_until_dead_lettered(stack, make_processor(stack, clock))  # received -> dead
    assert shard_keys_by_id(stack)[poison] == ("dead", f"dead#{shard_of(poison)}")
    assert [d.webhook_id for d in reader(stack).dead_letters()] == [poison]
    assert_keys_follow_status(stack)

    set_providers(stack, STRIPE_ONLY)
    clock.advance(SECRET_CACHE_EXPIRY)
    report = redrive_webhooks(  # dead -> received
        stack.clients.dynamodb,
        stack.clients.sqs,
        webhooks_table=stack.webhooks_table,
        queue_url=stack.queue_url,
        webhook_ids=[poison],
        clock=clock,
    )
    assert report.redriven == (poison,)
    assert shard_keys_by_id(stack)[poison] == ("received", f"received#{shard_of(poison)}")
    assert reader(stack).dead_letters() == []
    assert_keys_follow_status(stack)


def test_a_cursor_is_one_position_per_shard_and_anything_else_is_refused(
    stack: AwsStack,
) -> None:
    positions: list[object] = [None] * STATUS_SHARDS
    positions[3] = ["1700000000.5", "wh_x"]
    positions[4] = False
    assert decode_positions(encode_positions(positions), STATUS_SHARDS) == positions
    bad = [
        encode_positions(positions[:-1]),  # another shard count
        encode_positions([[1, "wh_x"]] * STATUS_SHARDS),  # not the strings printed
        encode_positions([["soon", "wh_x"]] * STATUS_SHARDS),
        "d" + encode_positions(positions)[1:],  # a Scan's cursor
        "snot base64!",
    ]
    for cursor in bad:
        with pytest.raises(CursorError, match="expected a cursor this command printed"):
            reader(stack).webhooks(WebhookQuery(status="received", cursor=cursor))
