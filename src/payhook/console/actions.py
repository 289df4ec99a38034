"""The console's actions: the CLI's use cases (redrive, retry, replay, audit verify), each
behind the CSRF check and, for redrive and retry, a confirmation page naming exactly what
will change. Writes go through the host's single writer where the use case takes one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.responses import RedirectResponse, Response

from payhook.backends.sqlite import SqliteAuditLog, SqliteQueue
from payhook.backends.sqlite.audit import embedded_chain_key
from payhook.backends.sqlite.outbox import SqliteOutbox
from payhook.backends.sqlite.reader import SqliteReader, open_read_only
from payhook.console.call import PREFIX, Call
from payhook.console.filters import dead_letters, failed_deliveries
from payhook.console.session import COOKIE
from payhook.errors import NotFoundError
from payhook.service.audit import verify_log
from payhook.views import iso

if TYPE_CHECKING:
    from payhook.console.web import Console

#: Problems listed on the overview after a failed verify (the rest are counted).
SHOWN_PROBLEMS = 20


def logout(console: Console, call: Call) -> Response:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


def _confirm(
    console: Console, call: Call, *, title: str, action: str, ids: list[str], what: str
) -> Response:
    return console.render(call, "confirm.html", title=title, action=action, ids=ids, what=what)


def _selected(
    console: Console, call: Call, matching: Callable[[SqliteReader], list[str]]
) -> list[str]:
    """The ids an action is for: all ``matching`` the filter (scope=matching), or the ones
    ticked, each once."""
    if call.value("scope") == "matching":
        with console.reader() as reader:
            return matching(reader)
    return list(dict.fromkeys(call.values("ids")))


def _result(console: Console, call: Call, **context: Any) -> Response:
    return console.render(call, "result.html", **context)


def redrive(console: Console, call: Call) -> Response:
    """Dead letters back to the queue: the selected ones, or all matching the filter."""
    ids = _selected(
        console,
        call,
        lambda reader: [
            f.letter.webhook_id
            for f in dead_letters(reader, call.value("provider"), call.value("reason"))
        ],
    )
    if call.value("confirm") != "yes":
        return _confirm(
            console,
            call,
            title=f"Redrive {len(ids)} dead letter{'s' if len(ids) != 1 else ''}?",
            action="dead-letters/redrive",
            ids=ids,
            what="Each goes back to the queue and is processed again.",
        )
    queue = SqliteQueue(
        console.settings.storage.path, clock=console.clock, writer=console.host.writer
    )
    try:
        moved = queue.redrive(ids) if ids else []
    finally:
        queue.conn.close()
    moved_ids = set(moved)
    missing = [i for i in ids if i not in moved_ids]
    return _result(
        console,
        call,
        title="Redrive",
        done=moved,
        done_label="queued again",
        missing=missing,
        missing_label="not a dead letter (any more)",
        link="deliveries",
        back="dead-letters",
    )


def retry(console: Console, call: Call) -> Response:
    """Outbox deliveries that gave up get a fresh set of attempts."""
    max_attempts = console.settings.outbox.max_attempts
    ids = _selected(
        console,
        call,
        lambda reader: [
            f.event_id for f in failed_deliveries(reader, max_attempts, call.value("error"))
        ],
    )
    if call.value("confirm") != "yes":
        return _confirm(
            console,
            call,
            title=f"Retry {len(ids)} outbound deliver{'ies' if len(ids) != 1 else 'y'}?",
            action="outbox/retry",
            ids=ids,
            what="Each gets a fresh set of attempts, the first one now.",
        )
    outbox = SqliteOutbox(
        console.settings.storage.path,
        max_attempts=max_attempts,
        clock=console.clock,
        writer=console.host.writer,
    )
    try:
        reset = outbox.retry(ids) if ids else []
    finally:
        outbox.close()
    reset_ids = set(reset)
    missing = [i for i in ids if i not in reset_ids]
    return _result(
        console,
        call,
        title="Retry",
        done=reset,
        done_label="retrying",
        missing=missing,
        missing_label="not a delivery that gave up (any more)",
        link=None,
        back="dead-letters",
    )


def replay(console: Console, call: Call) -> Response:
    webhook_id = call.request.path_params["webhook_id"]
    if call.value("confirm") != "yes":
        return _confirm(
            console,
            call,
            title="Process this delivery again?",
            action=f"deliveries/{webhook_id}/replay",
            ids=[webhook_id],
            what="The ledger ignores the facts it already holds.",
        )
    queue = SqliteQueue(
        console.settings.storage.path, clock=console.clock, writer=console.host.writer
    )
    try:
        found = queue.replay(webhook_id)
    finally:
        queue.conn.close()
    if not found:
        raise NotFoundError(f"no delivery {webhook_id}")
    return _result(
        console,
        call,
        title="Replay",
        done=[webhook_id],
        done_label="queued for processing",
        missing=[],
        missing_label="",
        link="deliveries",
        back=f"deliveries/{webhook_id}",
    )


def verify_audit(console: Console, call: Call) -> Response:
    """``payhook audit verify``, its result kept for the overview."""
    key = embedded_chain_key(console.settings.audit.key, "the console's audit verify")
    path = console.settings.storage.path
    log = SqliteAuditLog(path, conn=open_read_only(path))
    started = console.clock()
    try:
        with log.snapshot():
            report = verify_log(log, key, log)
    finally:
        log.close()
    chain = report.chain
    console.audit_result = {
        "at": iso(started),
        "ok": report.ok,
        "entries": chain.entries,
        "macs": chain.macs_verified,
        "chain_ok": chain.ok,
        "first_bad_seq": chain.first_bad_seq,
        "reason": chain.reason,
        "payments": report.payments,
        "problems": [(p.payment, p.reason) for p in report.problems[:SHOWN_PROBLEMS]],
        "more_problems": max(0, len(report.problems) - SHOWN_PROBLEMS),
    }
    return RedirectResponse(f"{PREFIX}/#audit", status_code=303)
