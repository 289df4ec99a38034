"""Retention: the raw payloads of processed webhooks, removed once they are old enough.

Only the payload goes: the row stays (status, ids, times, flags), so its webhook id still
dedups a late redelivery, and the ledger and the audit chain, which never hold payloads, are
untouched. Purged in small transactions, so a running server's writer waits a few
milliseconds at most between them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payhook.backends.sqlite.schema import WriteExecutor, connect, run_write

#: Webhooks per purge transaction.
BATCH = 1000


@dataclass(frozen=True, slots=True)
class PurgeReport:
    webhooks: int
    payload_bytes: int


_CANDIDATES = (
    "SELECT rowid, length(payload) FROM webhooks WHERE status = 'processed'"
    " AND received_at < ? AND purged_at IS NULL ORDER BY received_at LIMIT ?"
)


def purge_payloads(
    path: str | Path,
    *,
    older_than: float,
    dry_run: bool = False,
    writer: WriteExecutor | None = None,
    clock: Callable[[], float] = time.time,
) -> PurgeReport:
    """Remove the payloads of processed webhooks received before ``older_than``."""
    conn = connect(path)
    try:
        if dry_run:
            row = conn.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM webhooks"
                " WHERE status = 'processed' AND received_at < ? AND purged_at IS NULL",
                (older_than,),
            ).fetchone()
            return PurgeReport(int(row[0]), int(row[1]))
        webhooks = payload_bytes = 0
        while True:
            done = run_write(conn, writer, lambda c: _purge_batch(c, older_than, clock()))
            if not done[0]:
                return PurgeReport(webhooks, payload_bytes)
            webhooks += done[0]
            payload_bytes += done[1]
    finally:
        conn.close()


def _purge_batch(conn: sqlite3.Connection, older_than: float, now: float) -> tuple[int, int]:
    rows: list[Any] = conn.execute(_CANDIDATES, (older_than, BATCH)).fetchall()
    if not rows:
        return 0, 0
    conn.executemany(
        "UPDATE webhooks SET payload = x'', headers = NULL, purged_at = ? WHERE rowid = ?",
        [(now, row[0]) for row in rows],
    )
    return len(rows), sum(row[1] for row in rows)
