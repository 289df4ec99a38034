"""``payhook payments list|show``: the ledger, amounts in major units with their currency."""

from __future__ import annotations

import argparse
from typing import Any

from payhook.cli import render
from payhook.cli.database import reader
from payhook.cli.options import positive
from payhook.config import Settings
from payhook.core.ledger import PaymentStatus
from payhook.core.queries import PaymentQuery
from payhook.errors import NotFoundError
from payhook.views import money, payment_view


def register(
    sub: Any, reads: list[argparse.ArgumentParser], writes: list[argparse.ArgumentParser]
) -> None:
    payments = sub.add_parser(
        "payments", help="the payment ledger: list, show", description=__doc__
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = payments.add_parser("list", parents=reads, help="most recently updated first")
    listing.add_argument("--status", choices=[s.value for s in PaymentStatus])
    listing.add_argument("--provider")
    listing.add_argument("--limit", type=positive, default=50, help="per page (default 50)")
    listing.add_argument("--cursor", help="the next page, as the previous page printed it")
    listing.set_defaults(run=list_payments)
    show = payments.add_parser("show", parents=reads, help="one payment and its history")
    show.add_argument("provider")
    show.add_argument("payment_id")
    show.set_defaults(run=show_payment)


def list_payments(settings: Settings, args: argparse.Namespace) -> int:
    store = reader(settings)
    try:
        with store.snapshot():
            page = store.payments(PaymentQuery(args.status, args.provider, args.limit, args.cursor))
    finally:
        store.close()
    render.page(
        page,
        "payments",
        as_json=args.json,
        view=payment_view,
        headers=["provider", "payment", "status", "amount", "refunded", "updated"],
        row=lambda r: [
            r.provider,
            r.payment_id,
            r.status,
            money(r.amount, r.currency),
            money(r.amount_refunded, r.currency),
            render.when(r.updated_at),
        ],
    )
    return 0


def show_payment(settings: Settings, args: argparse.Namespace) -> int:
    store = reader(settings)
    try:
        record = store.payment(args.provider, args.payment_id)
    finally:
        store.close()
    if record is None:
        raise NotFoundError(f"no payment {args.provider}/{args.payment_id}")
    if args.json:
        render.emit_json(payment_view(record, history=True))
        return 0
    render.fields(
        [
            ("provider", record.provider),
            ("payment", record.payment_id),
            ("status", record.status),
            ("amount", money(record.amount, record.currency)),
            ("authorized", money(record.amount_authorized, record.currency)),
            ("captured", money(record.amount_captured, record.currency)),
            ("refunded", money(record.amount_refunded, record.currency)),
            ("disputed", money(record.amount_disputed, record.currency)),
            ("created", render.when(record.created_at)),
            ("updated", render.when(record.updated_at)),
            ("flags", list(record.flags)),
            ("version", record.version),
        ]
    )
    print("\nhistory:")
    render.table(
        ["time", "kind", "event type", "amount", "event"],
        [
            [
                render.when(e.occurred_at),
                e.kind,
                e.event_type,
                money(e.amount, e.currency or record.currency),
                e.event_id,
            ]
            for e in record.events
        ],
    )
    return 0
