"""The ``webhooks`` table: one column list for the writer's inserts and the store's reads.

Rows go in with multi-row statements that return nothing: a handful of SQLite calls per
group commit rather than several per webhook (or per row fetched), because each call releases
and re-takes the GIL on the writer thread, and under load re-taking it waits behind the
event-loop and worker threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from payhook.core.model import Stored, StoredWebhook, WebhookStatus

#: The ``webhooks`` table's columns, in the order the writer inserts them and the store reads
#: them (``webhook_values`` and ``webhook_from_row``).
WEBHOOK_FIELDS = (
    "webhook_id",
    "provider",
    "provider_type",
    "event_id",
    "event_type",
    "status",
    "verified",
    "payload",
    "received_at",
    "occurred_at",
    "processed_at",
    "attempts",
    "error",
    "id_signed",
    "conflict",
    "source",
    "headers",
)
WEBHOOK_COLUMNS = ", ".join(WEBHOOK_FIELDS)


def webhook_values(w: StoredWebhook, conflict: bool) -> tuple[Any, ...]:
    """``w`` as the values of ``WEBHOOK_COLUMNS``, flagged ``conflict`` or not."""
    return (
        w.webhook_id,
        w.provider,
        w.provider_type,
        w.event_id,
        w.event_type,
        str(w.status),
        int(w.verified),
        w.payload,
        w.received_at,
        w.occurred_at,
        w.processed_at,
        w.attempts,
        w.error,
        int(w.id_signed),
        int(conflict),
        w.source,
        w.headers,
    )


def webhook_from_row(row: sqlite3.Row) -> StoredWebhook:
    """A row selected as ``WEBHOOK_COLUMNS``."""
    return StoredWebhook(
        webhook_id=row[0],
        provider=row[1],
        provider_type=row[2],
        event_id=row[3],
        event_type=row[4],
        status=WebhookStatus(row[5]),
        verified=bool(row[6]),
        payload=bytes(row[7]),
        received_at=row[8],
        occurred_at=row[9],
        processed_at=row[10],
        attempts=row[11],
        error=row[12],
        id_signed=bool(row[13]),
        conflict=bool(row[14]),
        source=row[15],
        headers=row[16],
    )


_ROW = "(" + ",".join("?" * len(WEBHOOK_FIELDS)) + ")"
#: Webhooks per INSERT statement: 17 columns each, far below SQLite's 32766 bound parameters.
ROWS_PER_STATEMENT = 500


def insert_webhooks(
    conn: sqlite3.Connection, groups: Sequence[Sequence[StoredWebhook]]
) -> list[list[Stored]]:
    """Insert webhooks (a trigger queues each one); returns what storing did, per group.

    A webhook already stored, or seen earlier in the same call, is a duplicate and gets no
    second queue row. A new webhook whose unsigned event id another delivery already carries
    is stored flagged as a conflict. A row SQLite refuses fails the whole call (the writer
    then stores each group alone). At most ``ROWS_PER_STATEMENT`` webhooks that are all new
    are ONE statement, which outside a transaction commits atomically on its own: the insert
    is tried first, and only when it meets a stored webhook (a redelivery) are the stored
    ones looked up and the rest inserted; only the single writer inserts webhooks, so nothing
    is stored between the two.
    """
    fresh: dict[str, StoredWebhook] = {}
    for group in groups:
        for w in group:
            fresh.setdefault(w.webhook_id, w)
    new = list(fresh.values())
    conflicts = _conflicts(conn, [w for w in new if not w.id_signed])
    stored_now: set[str] = set()
    for start in range(0, len(new), ROWS_PER_STATEMENT):
        chunk = new[start : start + ROWS_PER_STATEMENT]
        try:
            _insert(conn, chunk, conflicts)
        except sqlite3.IntegrityError:
            # The failed statement changed nothing. A constraint other than the webhook id
            # fails again below, and the writer retries each group alone.
            before = _already_stored(conn, [w.webhook_id for w in chunk])
            chunk = [w for w in chunk if w.webhook_id not in before]
            if chunk:
                _insert(conn, chunk, conflicts)
        stored_now.update(w.webhook_id for w in chunk)
    results: list[list[Stored]] = []
    for group in groups:
        group_results = []
        for w in group:
            if w.webhook_id not in stored_now:
                group_results.append(Stored.DUPLICATE)
            else:
                group_results.append(Stored.CONFLICT if w.webhook_id in conflicts else Stored.NEW)
                stored_now.discard(w.webhook_id)  # a second mention in this call: a duplicate
        results.append(group_results)
    return results


def _already_stored(conn: sqlite3.Connection, webhook_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(webhook_ids), ROWS_PER_STATEMENT):
        chunk = webhook_ids[start : start + ROWS_PER_STATEMENT]
        rows = conn.execute(
            "SELECT webhook_id FROM webhooks"  # noqa: S608 - placeholders only
            f" WHERE webhook_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        found.update(row[0] for row in rows)
    return found


def _conflicts(conn: sqlite3.Connection, unsigned: list[StoredWebhook]) -> set[str]:
    """The webhooks (not stored yet) whose unsigned event id another delivery carries."""
    found: set[str] = set()
    seen: dict[tuple[str, str], str] = {}
    for w in unsigned:
        key = (w.provider, w.event_id)
        other = seen.setdefault(key, w.webhook_id)
        if (
            other != w.webhook_id
            or conn.execute(
                "SELECT 1 FROM webhooks WHERE provider = ? AND event_id = ? AND id_signed = 0"
                " AND webhook_id != ? LIMIT 1",
                (w.provider, w.event_id, w.webhook_id),
            ).fetchone()
        ):
            found.add(w.webhook_id)
    return found


def _insert(conn: sqlite3.Connection, batch: list[StoredWebhook], conflicts: set[str]) -> None:
    params: list[object] = []
    for w in batch:
        params += webhook_values(w, w.webhook_id in conflicts)
    conn.execute(
        f"INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES "  # noqa: S608
        + ",".join([_ROW] * len(batch)),
        params,
    )
