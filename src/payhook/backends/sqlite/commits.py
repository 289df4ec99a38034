"""Processing commits on SQLite: a webhook marked processed, its payment rows written (each
conditional on the version it was computed from), its canonical events put in the outbox and
its queue message deleted, all or nothing.

``apply_commit`` writes one commit. ``apply_batch`` writes the commits of a processing batch
in the one transaction of their background write: first all together, with a few multi-row
statements (a statement per table instead of four per webhook, each one a GIL hand-off on the
writer thread); if any of them would not apply exactly as planned (its webhook no longer
``received``, a payment version moved, a row refused), that attempt is undone and each commit
goes again on its own, in a savepoint of its own, so that one commit never undoes another.
The commits of a batch are planned in order, each on the payments as the earlier ones write
them: a commit after one that did not write a payment it also writes is a conflict.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from payhook.backends.sqlite.schema import DEQUEUE
from payhook.core.ports import ProcessingCommit
from payhook.errors import ConcurrencyError

#: Rows per multi-row statement: at most 10 values each, far below SQLite's 32766.
_ROWS_PER_STATEMENT = 500
#: JSON for the payment records and outbox events (msgspec: a few times faster than json.dumps
#: on these, and it runs for every processed webhook).
_JSON = msgspec.json.Encoder()
_PAYMENT_COLUMNS = (
    "status, currency, amount, amount_refunded, updated_at, version, record, provider, payment_id"
)


@dataclass(frozen=True, slots=True)
class CommitRows:
    """A processing commit as SQL parameters, serialized before it reaches the writer thread
    (the single writer should spend its time in SQLite, not in json.dumps)."""

    webhook_id: str
    processed_at: float
    payments: list[tuple[Any, ...]]  # _PAYMENT_COLUMNS values + the expected version
    outbox: list[tuple[str, str, float, float]]


def commit_rows(commit: ProcessingCommit) -> CommitRows:
    payments = []
    for write in commit.payments:
        record, expected = write.record, write.expected_version
        data = record.to_dict()
        data["version"] = expected + 1
        payments.append(
            (
                str(record.status),
                record.currency,
                record.amount,
                record.amount_refunded,
                record.updated_at,
                expected + 1,
                _JSON.encode(data).decode(),
                record.provider,
                record.payment_id,
                expected,
            )
        )
    outbox = [
        (event["id"], _JSON.encode(event).decode(), commit.processed_at, commit.processed_at)
        for event in commit.published
    ]
    return CommitRows(commit.webhook_id, commit.processed_at, payments, outbox)


def apply_commit(rows: CommitRows, conn: sqlite3.Connection) -> bool:
    """One processing commit, inside the caller's transaction or savepoint; False (nothing
    written) when the webhook is no longer ``received``."""
    marked = conn.execute(
        "UPDATE webhooks SET status = 'processed', processed_at = ?, error = NULL,"
        " attempts = attempts + 1 WHERE webhook_id = ? AND status = 'received'",
        (rows.processed_at, rows.webhook_id),
    ).rowcount
    if not marked:  # nothing was written: no rollback needed
        return False
    for values in rows.payments:
        _write_payment(conn, values)
    if rows.outbox:
        _insert_outbox(conn, rows.outbox)
    conn.execute(DEQUEUE, (rows.webhook_id,))
    return True


def apply_batch(conn: sqlite3.Connection, batch: Sequence[CommitRows]) -> list[bool | Exception]:
    """Every commit of ``batch`` in order, inside the caller's transaction; per commit its
    result (as ``apply_commit``) or the exception that undid it."""
    if not batch:
        return []
    conn.execute("SAVEPOINT batch")
    try:
        together = _apply_together(conn, batch)
    except Exception:
        together = False  # one commit brought it: found below, on its own
    if together:
        conn.execute("RELEASE batch")
        return [True] * len(batch)
    conn.execute("ROLLBACK TO batch")
    conn.execute("RELEASE batch")
    outcomes: list[bool | Exception] = []
    broken: set[tuple[str, str]] = set()  # payments an earlier commit failed to write
    for rows in batch:
        payments = {(values[-3], values[-2]) for values in rows.payments}
        if payments & broken:
            # Planned on top of a write that did not happen: whatever version it expects,
            # what it would write is wrong (another worker's write may even match it).
            outcome: bool | Exception = ConcurrencyError("planned on a write that failed")
        else:
            outcome = _apply_alone(conn, rows)
        if outcome is not True:
            broken |= payments
        outcomes.append(outcome)
    return outcomes


def _apply_together(conn: sqlite3.Connection, batch: Sequence[CommitRows]) -> bool:
    """All commits with multi-row statements; False as soon as one would not apply as
    planned (the caller then undoes the lot)."""
    marked = _each_chunk(
        conn,
        "UPDATE webhooks SET status = 'processed', processed_at = v.column2, error = NULL,"
        " attempts = attempts + 1 FROM (VALUES {rows}) AS v"
        " WHERE webhooks.webhook_id = v.column1 AND webhooks.status = 'received'",
        [(rows.webhook_id, rows.processed_at) for rows in batch],
    )
    if marked != len(batch):
        return False
    writes = [values for rows in batch for values in rows.payments]
    inserts = [values[:-1] for values in writes if values[-1] == 0]
    inserted = _each_chunk(
        conn,
        f"INSERT INTO payments ({_PAYMENT_COLUMNS}) VALUES {{rows}}"  # noqa: S608
        " ON CONFLICT (provider, payment_id) DO NOTHING",
        inserts,
    )
    if inserted != len(inserts):
        return False
    for updates in _rounds([values for values in writes if values[-1] != 0]):
        # One payment at most once per statement: its next write expects this one's version.
        updated = _each_chunk(
            conn,
            "UPDATE payments SET status = v.column1, currency = v.column2, amount = v.column3,"
            " amount_refunded = v.column4, updated_at = v.column5, version = v.column6,"
            " record = v.column7 FROM (VALUES {rows}) AS v WHERE payments.provider = v.column8"
            " AND payments.payment_id = v.column9 AND payments.version = v.column10",
            updates,
        )
        if updated != len(updates):
            return False
    outbox = [row for rows in batch for row in rows.outbox]
    for start in range(0, len(outbox), _ROWS_PER_STATEMENT):
        _insert_outbox(conn, outbox[start : start + _ROWS_PER_STATEMENT])
    ids = [rows.webhook_id for rows in batch]
    for start in range(0, len(ids), _ROWS_PER_STATEMENT):
        chunk = ids[start : start + _ROWS_PER_STATEMENT]
        conn.execute(
            "DELETE FROM queue WHERE message_id IN"  # noqa: S608 - placeholders only
            f" (SELECT rowid FROM webhooks WHERE webhook_id IN ({','.join('?' * len(chunk))}))",
            chunk,
        )
    return True


def _apply_alone(conn: sqlite3.Connection, rows: CommitRows) -> bool | Exception:
    conn.execute("SAVEPOINT one")
    try:
        done = apply_commit(rows, conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO one")
        conn.execute("RELEASE one")
        return exc
    conn.execute("RELEASE one")
    return done


def _each_chunk(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
    """Run ``sql`` with ``{rows}`` as a multi-row VALUES list, in chunks; rows changed."""
    changed = 0
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        placeholders = ",".join("(" + ",".join("?" * len(row)) + ")" for row in chunk)
        params = [value for row in chunk for value in row]
        changed += conn.execute(sql.format(rows=placeholders), params).rowcount
    return changed


def _rounds(updates: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """``updates`` split so that each payment appears at most once per round, in order."""
    rounds: list[list[tuple[Any, ...]]] = []
    seen: dict[tuple[str, str], int] = {}
    for values in updates:
        key = (values[-3], values[-2])
        index = seen[key] = seen.get(key, -1) + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(values)
    return rounds


def _insert_outbox(conn: sqlite3.Connection, rows: Sequence[tuple[str, str, float, float]]) -> None:
    conn.execute(
        "INSERT INTO outbox (event_id, body, created_at, next_attempt_at) VALUES "  # noqa: S608
        + ",".join(["(?, ?, ?, ?)"] * len(rows))
        + " ON CONFLICT (event_id) DO NOTHING",
        [value for row in rows for value in row],
    )


def _write_payment(conn: sqlite3.Connection, values: tuple[Any, ...]) -> None:
    *columns, expected = values
    if expected == 0:
        cursor = conn.execute(
            f"INSERT INTO payments ({_PAYMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            " ON CONFLICT (provider, payment_id) DO NOTHING",
            columns,
        )
    else:
        cursor = conn.execute(
            "UPDATE payments SET status = ?, currency = ?, amount = ?, amount_refunded = ?,"
            " updated_at = ?, version = ?, record = ? WHERE provider = ? AND payment_id = ?"
            " AND version = ?",
            values,
        )
    if cursor.rowcount != 1:
        provider, payment_id = columns[-2], columns[-1]
        raise ConcurrencyError(f"payment {provider}/{payment_id} changed")
