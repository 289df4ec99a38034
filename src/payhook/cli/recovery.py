"""Recovery: ``payhook replay``, ``payhook dead-letters list|redrive`` and ``payhook outbox
list|retry`` (deliveries of canonical events that gave up)."""

from __future__ import annotations

import argparse
from typing import Any

from payhook.backends.sqlite import SqliteQueue
from payhook.backends.sqlite.outbox import SqliteOutbox
from payhook.backends.sqlite.reader import SqliteReader
from payhook.cli import render
from payhook.cli.database import for_writing, reader, sqlite_only, uses_aws, writing_stack
from payhook.config import Settings
from payhook.errors import NotFoundError


def register(
    sub: Any, reads: list[argparse.ArgumentParser], writes: list[argparse.ArgumentParser]
) -> None:
    replay = sub.add_parser(
        "replay",
        parents=writes,
        help="process a stored webhook again (the ledger ignores facts it holds)",
    )
    replay.add_argument("webhook_id")
    replay.set_defaults(run=replay_webhook)

    dead = sub.add_parser(
        "dead-letters", help="webhooks that exhausted their retries: list, redrive"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    dead.add_parser("list", parents=reads, help="each with its last error").set_defaults(
        run=list_dead_letters
    )
    redrive = dead.add_parser("redrive", parents=writes, help="queue them again")
    redrive.add_argument("webhook_ids", nargs="*", help="default: all of them")
    redrive.set_defaults(run=redrive_dead_letters)

    outbox = sub.add_parser(
        "outbox", help="forwarded canonical events: list, retry"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = outbox.add_parser("list", parents=reads, help="deliveries that gave up")
    listing.add_argument(
        "--failed", action="store_true", help="those that gave up (the only ones listed)"
    )
    listing.set_defaults(run=list_failed_deliveries)
    retry = outbox.add_parser("retry", parents=writes, help="give them a fresh set of attempts")
    retry.add_argument("event_ids", nargs="*", help="default: every delivery that gave up")
    retry.set_defaults(run=retry_deliveries)


def replay_webhook(settings: Settings, args: argparse.Namespace) -> int:
    if uses_aws(settings):
        from payhook.backends.aws.replay import replay_webhook as replay_on_aws

        stack = writing_stack(settings)
        found = replay_on_aws(
            stack.clients.dynamodb,
            stack.clients.sqs,
            webhooks_table=stack.webhooks_table,
            queue_url=stack.queue_url,
            webhook_id=args.webhook_id,
        )
    else:
        found = SqliteQueue(for_writing(settings)).replay(args.webhook_id)
    if not found:
        raise NotFoundError(f"no webhook {args.webhook_id!r}")
    print(f"queued {args.webhook_id} for processing")
    return 0


def list_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    store = reader(settings)
    try:
        letters = store.dead_letters()
    finally:
        store.close()
    if args.json:
        render.emit_json(
            [
                {
                    "webhookId": d.webhook_id,
                    "reason": d.reason,
                    "receiveCount": d.receive_count,
                    "failedAt": render.when(d.failed_at),
                }
                for d in letters
            ]
        )
        return 0
    render.table(
        ["webhook", "receives", "failed", "reason"],
        [[d.webhook_id, d.receive_count, render.when(d.failed_at), d.reason] for d in letters],
    )
    return 0


def redrive_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    if uses_aws(settings):
        return _redrive_on_aws(settings, args.webhook_ids)
    moved = SqliteQueue(for_writing(settings)).redrive(args.webhook_ids or None)
    print(f"redriven: {len(moved)}")
    missing = sorted(set(args.webhook_ids) - set(moved))
    for webhook_id in missing:
        render.error(f"{webhook_id} is not a dead letter")
    return 1 if missing else 0


def _redrive_on_aws(settings: Settings, webhook_ids: list[str]) -> int:
    """Every dead letter of the DLQ, or the webhooks named (whether or not their dead
    letter still exists): each reset from dead to received and queued, once."""
    from payhook.backends.aws.redrive import redrive_dead_letters as redrive_queue
    from payhook.backends.aws.redrive import redrive_webhooks

    stack = writing_stack(settings)
    ddb, sqs = stack.clients.dynamodb, stack.clients.sqs
    if webhook_ids:
        report = redrive_webhooks(
            ddb,
            sqs,
            webhooks_table=stack.webhooks_table,
            queue_url=stack.queue_url,
            webhook_ids=list(webhook_ids),
        )
    else:
        report = redrive_queue(
            ddb,
            sqs,
            webhooks_table=stack.webhooks_table,
            queue_url=stack.queue_url,
            dead_letter_queue_url=stack.dead_letter_queue_url,
        )
    print(f"redriven: {len(report.redriven) + len(report.requeued)}")
    for webhook_id, status in sorted(report.skipped.items()):
        render.error(f"{webhook_id} is not a dead letter ({status})")
    if report.unreadable:
        render.error(f"{report.unreadable} dead letters name no webhook; left in the queue")
    return 1 if webhook_ids and report.skipped else 0


def list_failed_deliveries(settings: Settings, args: argparse.Namespace) -> int:
    sqlite_only(settings, "outbox list")  # on AWS, events go to EventBridge
    store = SqliteReader(settings.storage.path)
    try:
        failed = store.failed_deliveries(settings.outbox.max_attempts)
    finally:
        store.close()
    if args.json:
        render.emit_json(
            [
                {
                    "eventId": f.event_id,
                    "attempts": f.attempts,
                    "lastError": f.last_error,
                    "createdAt": render.when(f.created_at),
                }
                for f in failed
            ]
        )
        return 0
    render.table(
        ["event", "attempts", "created", "last error"],
        [[f.event_id, f.attempts, render.when(f.created_at), f.last_error] for f in failed],
    )
    return 0


def retry_deliveries(settings: Settings, args: argparse.Namespace) -> int:
    sqlite_only(settings, "outbox retry")
    outbox = SqliteOutbox(for_writing(settings), max_attempts=settings.outbox.max_attempts)
    try:
        reset = outbox.retry(args.event_ids or None)
    finally:
        outbox.close()
    print(f"retrying: {len(reset)}")
    missing = sorted(set(args.event_ids) - set(reset))
    for event_id in missing:
        render.error(f"{event_id} is not a delivery that gave up")
    return 1 if missing else 0
