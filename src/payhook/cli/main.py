"""``payhook``: one entry point; every command takes ``--config PATH``.

Exit status: 0 success, 1 the thing asked about is missing or failed a check, 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from payhook.backends.sqlite import SqliteAuditLog, SqliteQueue, SqliteStore, initialize
from payhook.backends.sqlite.audit import embedded_chain_key
from payhook.cli import render
from payhook.config import Settings, load_settings
from payhook.core.audit import head_message
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.money import format_minor
from payhook.errors import NotFoundError, PayhookError
from payhook.providers import build_providers
from payhook.service.audit import verify_log
from payhook.service.ingest import Answer, Ingest


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="TOML config (default: ./payhook.toml)")
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON")

    parser = argparse.ArgumentParser(prog="payhook", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP server and workers")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    send = sub.add_parser("send", parents=[common], help="sign and POST a sample webhook")
    send.add_argument("provider")
    send.add_argument("event_type", nargs="?")
    send.add_argument("--url", help="default: the configured server's /webhook/PROVIDER")

    webhooks = sub.add_parser("webhooks", help="stored webhooks").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    wl = webhooks.add_parser("list", parents=[common, json_flag])
    wl.add_argument("--status", choices=[s.value for s in WebhookStatus])
    wl.add_argument("--provider")
    wl.add_argument("--limit", type=int, default=100)
    ws = webhooks.add_parser("show", parents=[common, json_flag])
    ws.add_argument("webhook_id")

    payments = sub.add_parser("payments", help="the payment ledger").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    ps = payments.add_parser("show", parents=[common, json_flag])
    ps.add_argument("provider")
    ps.add_argument("payment_id")
    pl = payments.add_parser("list", parents=[common, json_flag])
    pl.add_argument("--status")
    pl.add_argument("--provider")
    pl.add_argument("--limit", type=int, default=100)

    replay = sub.add_parser("replay", parents=[common], help="process a stored webhook again")
    replay.add_argument("webhook_id")

    dead = sub.add_parser("dead-letters", help="webhooks that exhausted their retries")
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    dead_sub.add_parser("list", parents=[common, json_flag])
    redrive = dead_sub.add_parser("redrive", parents=[common], help="queue dead letters again")
    redrive.add_argument("webhook_ids", nargs="*", help="default: all of them")

    audit = sub.add_parser("audit", help="the tamper-evident audit trail").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    verify = audit.add_parser(
        "verify",
        parents=[common, json_flag],
        help="check the chain, its MACs, and every payment row against its events and audit",
    )
    verify.add_argument(
        "--expect-head",
        metavar="SEQ:HASH",
        type=_anchor,
        help="a head printed earlier by `audit head`: the chain must still pass through it",
    )
    audit.add_parser(
        "head", parents=[common, json_flag], help="print the authenticated head, to anchor it"
    )
    return parser


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not (seq.isdigit() and int(seq) > 0 and len(digest) == 64):
        raise argparse.ArgumentTypeError(f"got {text!r}, expected SEQ:HASH as `audit head` prints")
    try:
        bytes.fromhex(digest)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected a hex SHA-256 after ':'"
        ) from None
    return int(seq), digest.lower()


def _flags(webhook: StoredWebhook) -> str:
    """What a reader must know about a webhook's identity: ``conflict`` when another delivery
    carries its unsigned event id with other bytes, ``unverified`` for Mollie classic posts."""
    flags = ["conflict"] if webhook.conflict else []
    if not webhook.verified:
        flags.append("unverified")
    return ",".join(flags) or "-"


def _webhook_rows(webhooks: Sequence[StoredWebhook]) -> list[list[object]]:
    return [
        [
            w.webhook_id,
            w.provider,
            w.event_type,
            w.status,
            render.when(w.received_at),
            w.event_id,
            _flags(w),
        ]
        for w in webhooks
    ]


def _payment_rows(records: Sequence[PaymentRecord]) -> list[list[object]]:
    return [
        [
            r.provider,
            r.payment_id,
            r.status,
            format_minor(r.amount, r.currency) if r.currency else r.amount,
            format_minor(r.amount_refunded, r.currency) if r.currency else r.amount_refunded,
            render.when(r.updated_at),
        ]
        for r in records
    ]


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from payhook.server.run import serve

    return serve(settings, host=args.host, port=args.port)


def cmd_send(settings: Settings, args: argparse.Namespace) -> int:
    ingest = Ingest(
        build_providers(settings.providers), body_limit_bytes=settings.server.body_limit_bytes
    )
    provider = ingest.route(args.provider)
    if isinstance(provider, Answer):
        raise NotFoundError(f"no provider named {args.provider!r} in {settings.source}")
    if (
        args.event_type
        and provider.sample_event_types
        and (args.event_type not in provider.sample_event_types)
    ):
        known = ", ".join(provider.sample_event_types)
        raise PayhookError(f"no {provider.type_name} sample for {args.event_type!r}; try: {known}")
    url = args.url or (
        f"http://{settings.server.host}:{settings.server.port}/webhook/{args.provider}"
    )
    if not url.startswith(("http://", "https://")):
        raise PayhookError(f"--url must be http or https, got {url!r}")
    request = provider.sample_request(args.event_type)
    # Verified and split by the delivery flow the server runs: the events reported below are
    # the rows a server with this configuration stores.
    prepared = ingest.prepare(args.provider, request)
    if isinstance(prepared, Answer):
        raise PayhookError(
            f"the {args.provider} sample is refused by its own configuration"
            f" ({prepared.status}): {prepared.body.decode(errors='replace')}"
        )
    http_request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=request.body, headers=request.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(http_request, timeout=30) as response:  # noqa: S310
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        print(f"payhook: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(f"POST {url} -> {status}")
    print(body.decode(errors="replace"))
    if not 200 <= status < 300:
        return 1  # nothing was acknowledged: there are no events to report
    for webhook in prepared.webhooks:
        payments = sorted({p.payment_id for p in prepared.provider.payment_events(webhook)})
        print(
            f"event {webhook.event_id} ({webhook.event_type}) payment: {', '.join(payments) or '-'}"
        )
    return 0


def cmd_webhooks(store: SqliteStore, args: argparse.Namespace) -> int:
    if args.action == "list":
        webhooks = store.list_webhooks(args.status, args.provider, args.limit)
        if args.json:
            render.emit_json([w.summary() for w in webhooks])
        else:
            render.table(
                ["webhook", "provider", "type", "status", "received", "event", "flags"],
                _webhook_rows(webhooks),
            )
        return 0
    webhook = store.get_webhook(args.webhook_id)
    if webhook is None:
        raise NotFoundError(f"no webhook {args.webhook_id!r}")
    if args.json:
        render.emit_json(webhook.summary())
    else:
        summary = webhook.summary()
        render.fields(
            [(k, v) for k, v in summary.items()] + [("payloadBytes", len(webhook.payload))]
        )
    return 0


def cmd_payments(store: SqliteStore, args: argparse.Namespace) -> int:
    if args.action == "list":
        records = store.list_payments(args.status, args.provider, args.limit)
        if args.json:
            render.emit_json([r.summary() for r in records])
        else:
            render.table(
                ["provider", "payment", "status", "amount", "refunded", "updated"],
                _payment_rows(records),
            )
        return 0
    record = store.get_payment(args.provider, args.payment_id)
    if record is None:
        raise NotFoundError(f"no payment {args.provider}/{args.payment_id}")
    if args.json:
        data = record.summary()
        data["history"] = [e.to_dict() for e in record.events]
        render.emit_json(data)
        return 0
    render.fields(list(record.summary().items()))
    print("\nhistory:")
    render.table(
        ["time", "kind", "event type", "amount", "event"],
        [
            [render.when(e.occurred_at), e.kind, e.event_type, e.amount, e.event_id]
            for e in record.events
        ],
    )
    return 0


def cmd_dead_letters(queue: SqliteQueue, args: argparse.Namespace) -> int:
    if args.action == "list":
        letters = queue.dead_letters()
        if args.json:
            render.emit_json(
                [
                    {
                        "webhookId": d.webhook_id,
                        "reason": d.reason,
                        "receiveCount": d.receive_count,
                        "failedAt": d.failed_at,
                    }
                    for d in letters
                ]
            )
        else:
            render.table(
                ["webhook", "receives", "failed", "reason"],
                [
                    [d.webhook_id, d.receive_count, render.when(d.failed_at), d.reason]
                    for d in letters
                ],
            )
        return 0
    moved = queue.redrive(args.webhook_ids or None)
    missing = sorted(set(args.webhook_ids) - set(moved))
    print(f"redriven: {len(moved)}")
    for webhook_id in missing:
        print(f"payhook: {webhook_id} is not a dead letter", file=sys.stderr)
    return 1 if missing else 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    key = embedded_chain_key(settings.audit.key, f"payhook audit {args.action}")
    initialize(settings.storage.path)
    log = SqliteAuditLog(settings.storage.path)
    if args.action == "head":
        head = log.head()
        if head is None:
            raise NotFoundError("the audit chain is empty")
        if head.mac is None or not key.verify(head_message(head.seq, head.hash), head.mac):
            print(
                f"payhook: audit head {head.seq} is not authenticated by the configured key;"
                " run `payhook audit verify`",
                file=sys.stderr,
            )
            return 1
        anchor = f"{head.seq}:{head.hash}"
        if args.json:
            render.emit_json(
                {"seq": head.seq, "hash": head.hash, "mac": head.mac, "anchor": anchor}
            )
        else:
            render.fields([("seq", head.seq), ("hash", head.hash), ("mac", head.mac)])
            print(f"\nanchor {anchor}: keep it outside the database, and check it later with")
            print(f"payhook audit verify --expect-head {anchor}")
        return 0
    with log.snapshot():
        report = verify_log(log, key, log, anchor=args.expect_head)
    if args.json:
        render.emit_json(report.to_dict())
        return 0 if report.ok else 1
    chain = report.chain
    if chain.ok and chain.entries:
        print(
            f"audit chain ok; {chain.entries} entries verified; head {chain.entries}"
            f" authenticated ({chain.macs_verified} MACs checked)"
        )
    elif chain.ok:
        print("audit chain ok; 0 entries verified (empty)")
    else:
        print(f"audit chain BROKEN at entry {chain.first_bad_seq}: {chain.reason}")
    for problem in report.problems:
        print(f"payment {problem.payment}: {problem.reason}")
    print(f"payments: {report.payments} checked, {len(report.problems)} do not match")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        if args.command == "serve":
            return cmd_serve(settings, args)
        if args.command == "send":
            return cmd_send(settings, args)
        if args.command == "audit":
            return cmd_audit(settings, args)
        initialize(settings.storage.path)
        path = settings.storage.path
        if args.command == "webhooks":
            return cmd_webhooks(SqliteStore(path), args)
        if args.command == "payments":
            return cmd_payments(SqliteStore(path), args)
        if args.command == "replay":
            if not SqliteQueue(path).replay(args.webhook_id):
                raise NotFoundError(f"no webhook {args.webhook_id!r}")
            print(f"queued {args.webhook_id} for processing")
            return 0
        if args.command == "dead-letters":
            return cmd_dead_letters(SqliteQueue(path), args)
        raise AssertionError(f"unhandled command {args.command!r}")  # argparse allows no other
    except NotFoundError as exc:
        print(f"payhook: {exc}", file=sys.stderr)
        return 1
    except PayhookError as exc:
        print(f"payhook: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
