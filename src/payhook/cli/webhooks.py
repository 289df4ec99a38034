"""``payhook webhooks list|show|tail``: stored webhooks, found and followed."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from payhook.cli import render
from payhook.cli.database import reader, sqlite_reader, where
from payhook.cli.options import moment, positive
from payhook.config import Settings
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.queries import WebhookQuery
from payhook.errors import NotFoundError
from payhook.views import flags, webhook_view

HEADERS = ["webhook", "provider", "type", "status", "received", "event", "flags"]


def register(
    sub: Any, reads: list[argparse.ArgumentParser], writes: list[argparse.ArgumentParser]
) -> None:
    webhooks = sub.add_parser(
        "webhooks", help="stored webhooks: list, show, tail", description=__doc__
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = webhooks.add_parser("list", parents=reads, help="newest first, filtered, paged")
    listing.add_argument("--status", choices=[s.value for s in WebhookStatus])
    listing.add_argument("--provider", help="a configured provider's name")
    listing.add_argument("--type", dest="event_type", help="an event type, exactly")
    listing.add_argument("--event-id", help="the provider's event id")
    listing.add_argument("--since", type=moment, help="received since: 24h, 7d, or a time")
    listing.add_argument("--until", type=moment, help="received before: 1h, or a time")
    listing.add_argument("--limit", type=positive, default=50, help="per page (default 50)")
    listing.add_argument("--cursor", help="the next page, as the previous page printed it")
    listing.set_defaults(run=list_webhooks)
    show = webhooks.add_parser("show", parents=reads, help="one webhook")
    show.add_argument("webhook_id")
    show.add_argument("--payload", action="store_true", help="also print the stored body")
    show.set_defaults(run=show_webhook)
    tail = webhooks.add_parser("tail", parents=reads, help="follow deliveries as they arrive")
    tail.add_argument("--provider")
    tail.add_argument("--count", type=positive, help="stop after this many (default: never)")
    tail.set_defaults(run=tail_webhooks)


def row(w: StoredWebhook) -> list[object]:
    return [
        w.webhook_id,
        w.provider,
        w.event_type,
        w.status,
        render.when(w.received_at),
        w.event_id,
        ",".join(flags(w)) or "-",
    ]


def list_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    query = WebhookQuery(
        status=args.status,
        provider=args.provider,
        event_type=args.event_type,
        event_id=args.event_id,
        since=args.since,
        until=args.until,
        limit=args.limit,
        cursor=args.cursor,
    )
    store = reader(settings)
    try:
        with store.snapshot():
            page = store.webhooks(query)
    finally:
        store.close()
    render.page(page, "webhooks", as_json=args.json, view=webhook_view, headers=HEADERS, row=row)
    return 0


def show_webhook(settings: Settings, args: argparse.Namespace) -> int:
    store = reader(settings)
    try:
        webhook = store.webhook(args.webhook_id)
    finally:
        store.close()
    if webhook is None:
        raise NotFoundError(f"no webhook {args.webhook_id!r} in {where(settings)}")
    view = webhook_view(webhook, payload=args.payload)
    if args.json:
        render.emit_json(view)
        return 0
    body = view.pop("payload", None)
    render.fields(list(view.items()))
    if body is not None:
        print()
        print(body if not webhook.purged else "(purged by retention)")
    return 0


def tail_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    """Print each webhook as it is stored, until interrupted (or ``--count``)."""
    store = sqlite_reader(settings, "webhooks tail")
    shown = 0
    try:
        position = store.latest()
        if not args.json:
            print("  ".join(h.upper() for h in HEADERS), flush=True)
        while args.count is None or shown < args.count:
            arrived = store.arrived_after(position)
            for at, webhook in arrived:
                position = at  # what is printed (or skipped) is never printed again
                if args.provider and webhook.provider != args.provider:
                    continue
                _print_one(webhook, args.json)
                shown += 1
                if args.count is not None and shown >= args.count:
                    break
            if not arrived:
                time.sleep(0.25)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


def _print_one(webhook: StoredWebhook, as_json: bool) -> None:
    if as_json:
        print(json.dumps(webhook_view(webhook)), flush=True)
    else:
        print("  ".join(str(c) for c in row(webhook)), flush=True)
