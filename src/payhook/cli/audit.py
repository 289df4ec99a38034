"""``payhook audit verify|head``: the keyed audit chain, and an anchor to keep elsewhere."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from payhook.backends.sqlite import SqliteAuditLog
from payhook.backends.sqlite.audit import embedded_chain_key
from payhook.backends.sqlite.reader import open_read_only
from payhook.cli import render
from payhook.config import Settings
from payhook.core.audit import head_message
from payhook.errors import NotFoundError
from payhook.service.audit import verify_log


def register(
    sub: Any, reads: list[argparse.ArgumentParser], writes: list[argparse.ArgumentParser]
) -> None:
    audit = sub.add_parser(
        "audit", help="the keyed audit chain: verify, head", description=__doc__
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = audit.add_parser(
        "verify",
        parents=reads,
        help="check the chain, its MACs, and every payment row against its events and audit",
    )
    verify.add_argument(
        "--expect-head",
        metavar="SEQ:HASH",
        type=_anchor,
        help="a head printed earlier by `audit head`: the chain must still pass through it",
    )
    verify.set_defaults(run=verify_chain)
    audit.add_parser(
        "head", parents=reads, help="print the authenticated head, to anchor it"
    ).set_defaults(run=print_head)


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


def _log(settings: Settings) -> SqliteAuditLog:
    return SqliteAuditLog(settings.storage.path, conn=open_read_only(settings.storage.path))


def print_head(settings: Settings, args: argparse.Namespace) -> int:
    key = embedded_chain_key(settings.audit.key, "payhook audit head")
    head = _log(settings).head()
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
        render.emit_json({"seq": head.seq, "hash": head.hash, "mac": head.mac, "anchor": anchor})
        return 0
    render.fields([("seq", head.seq), ("hash", head.hash), ("mac", head.mac)])
    print(f"\nanchor {anchor}: keep it outside the database, and check it later with")
    print(f"payhook audit verify --expect-head {anchor}")
    return 0


def verify_chain(settings: Settings, args: argparse.Namespace) -> int:
    key = embedded_chain_key(settings.audit.key, "payhook audit verify")
    log = _log(settings)
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
