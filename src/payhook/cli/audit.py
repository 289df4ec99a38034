"""``payhook audit verify|head|repair``: the keyed audit chain, and an anchor to keep elsewhere.

On the AWS backend (``[aws] enabled``) the chain is the stack's audit table, keyed by its KMS
HMAC key: verify also checks every shard, the checkpoints, and that no webhook or payment
change is missing from the chain; ``repair`` appends, marked late, what the stream lost."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from payhook.backends.sqlite import SqliteAuditLog
from payhook.backends.sqlite.audit import embedded_chain_key
from payhook.backends.sqlite.reader import open_read_only
from payhook.cli import render
from payhook.cli.database import deployed, uses_aws, writing_stack
from payhook.config import Settings
from payhook.core.audit import AuditEntry, head_message
from payhook.core.chain_key import ChainKey
from payhook.errors import NotFoundError, PayhookError
from payhook.service.audit import payment_problem, verify_log

if TYPE_CHECKING:
    from payhook.backends.aws.deployed import DeployedStack
    from payhook.backends.aws.shards import ShardedAuditLog
    from payhook.backends.aws.verify import StackAuditReport


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
    audit.add_parser(
        "repair",
        parents=reads,
        help="AWS: append, marked late, the changes the audit stream lost (after verify)",
    ).set_defaults(run=repair_chain)


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


def _aws(
    settings: Settings, stack: DeployedStack | None = None
) -> tuple[ShardedAuditLog, ChainKey]:
    from payhook.backends.aws.audit import KmsChainKey
    from payhook.backends.aws.shards import ShardedAuditLog

    stack = stack or deployed(settings)
    log = ShardedAuditLog(
        stack.clients.dynamodb, table=stack.audit_table, shards=stack.names.audit_shards
    )
    return log, KmsChainKey(stack.clients.kms, key_id=stack.names.key_id)


def print_head(settings: Settings, args: argparse.Namespace) -> int:
    head: AuditEntry | None
    if uses_aws(settings):
        # Sharded: the checkpoint chain's head, which commits to every shard's head.
        sharded, key = _aws(settings)
        head = (sharded.checkpoints if sharded.sharded else sharded.shards[0]).head()
    else:
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
    if uses_aws(settings):
        stack_report = _verify_stack(settings, anchor=args.expect_head)
        if args.json:
            render.emit_json(stack_report.to_dict())
        else:
            _print_stack_report(stack_report)
        return 0 if stack_report.ok else 1
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


def _verify_stack(
    settings: Settings, anchor: tuple[int, str] | None = None, stack: DeployedStack | None = None
) -> StackAuditReport:
    from payhook.backends.aws.verify import verify_stack

    sharded, key = _aws(settings, stack)
    stack = stack or deployed(settings)
    return verify_stack(
        sharded,
        key,
        webhooks_table=stack.webhooks_table,
        payments_table=stack.payments_table,
        payment_problem=payment_problem,
        anchor=anchor,
    )


def _print_stack_report(report: StackAuditReport) -> None:
    for name, chain in report.chains:
        if chain.ok:
            print(
                f"audit chain {name} ok; {chain.entries} entries verified"
                f" ({chain.macs_verified} MACs checked)"
            )
        else:
            print(f"audit chain {name} BROKEN at entry {chain.first_bad_seq}: {chain.reason}")
    for problem in report.checkpoint_problems:
        print(problem)
    for gap in report.gaps:
        print(f"{gap.subject}: no audit entry for {'; '.join(gap.lost)}")
    for subject, reason in report.problems:
        print(f"{subject}: {reason}")
    print(
        f"payments: {report.payments} checked; webhooks: {report.webhooks} checked;"
        f" {len(report.gaps)} with changes missing from the chain,"
        f" {len(report.problems)} that do not match"
    )
    if report.gaps:
        print("run `payhook audit repair` to append what the stream lost, marked late")


def repair_chain(settings: Settings, args: argparse.Namespace) -> int:
    """Append a late entry for each subject whose changes the chain lacks."""
    from payhook.backends.aws.verify import repair_gaps

    if not uses_aws(settings):
        raise PayhookError(
            "`payhook audit repair` is for the AWS backend ([aws] enabled): the embedded"
            " chain is written in the same transaction as the changes, so nothing is lost"
        )
    stack = writing_stack(settings)
    report = _verify_stack(settings, stack=stack)
    if not report.chains_ok:
        _print_stack_report(report)
        print("not repaired: a late entry is appended only to chains that verify")
        return 1
    sharded, key = _aws(settings, stack)
    appended = repair_gaps(sharded, key, report.gaps)
    if args.json:
        render.emit_json({"appended": len(appended), "subjects": [g.subject for g in report.gaps]})
    else:
        for gap in report.gaps:
            print(f"{gap.subject}: appended late ({'; '.join(gap.lost)})")
        print(f"repaired: {len(report.gaps)}")
    for subject, reason in report.problems:
        render.error(f"{subject}: {reason} (not repairable: a change the ledger did not make)")
    return 1 if report.problems else 0
