"""After a run: every acknowledged webhook ended processed (or dead), once, with its effects once.

``check`` reads the SQLite database the server used and compares it with what the harness
knows it sent. The ledger is re-derived independently: each payment's events are re-read from
the processed webhooks through the same providers and folded in commit order (``processed_at``;
a commit that read a stale payment row loses the version check and is redone later, so for
one payment the two orders agree). That fold predicts each payment's final state, its version
(one per write) and its outbox rows (one per state change), so an effect lost or applied twice
shows up as a mismatch.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payhook.backends.sqlite import SqliteAuditLog, SqliteStore
from payhook.core import ledger
from payhook.core.chain_key import HmacChainKey
from payhook.core.ledger import PaymentRecord
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.providers import Provider
from payhook.service.audit import verify_log
from tests.conftest import AUDIT_TEST_KEY


@dataclass(slots=True)
class Report:
    acknowledged: int = 0
    stored: int = 0
    processed: int = 0
    dead: int = 0
    payments: int = 0
    payment_versions: int = 0
    outbox: int = 0
    audit_entries: int = 0
    audit_ok: bool = False
    problems: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acknowledged,
            "stored": self.stored,
            "processed": self.processed,
            "dead": self.dead,
            "payments": self.payments,
            "payment_versions": self.payment_versions,
            "outbox": self.outbox,
            "audit_entries": self.audit_entries,
            "audit_ok": self.audit_ok,
            "problems": len(self.problems),
        }


def _sample(ids: Iterable[str], limit: int = 5) -> str:
    ordered = sorted(ids)
    more = f" (+{len(ordered) - limit} more)" if len(ordered) > limit else ""
    return ", ".join(ordered[:limit]) + more


def check(
    db: str | Path,
    providers: Mapping[str, Provider],
    *,
    acknowledged: Iterable[str],
    sent: Iterable[str],
    expected_dead: Iterable[str] = (),
) -> Report:
    """Compare the database with the webhook ids that got a 2xx and all ids ever sent."""
    acked, sent_ids, dead_ok = set(acknowledged), set(sent), set(expected_dead)
    report = Report(acknowledged=len(acked))
    conn = sqlite3.connect(str(db))
    conn.row_factory = sqlite3.Row
    store = SqliteStore(db)
    try:
        webhooks = {w.webhook_id: w for w in store.list_webhooks(limit=10**9)}
        _check_webhooks(conn, report, webhooks, acked, sent_ids, dead_ok)
        _check_audit_of_webhooks(conn, report, webhooks)
        _check_ledger(conn, report, webhooks, providers)
        audit_log = SqliteAuditLog(db)
        audit = verify_log(audit_log, HmacChainKey(AUDIT_TEST_KEY), audit_log)
        report.audit_ok = audit.ok
        report.audit_entries = audit.chain.entries
        if not audit.chain.ok:
            report.problems.append(f"audit chain broken: {audit.chain.to_dict()}")
        elif audit.problems:
            report.problems.append(f"payment rows disagree with the audit trail: {audit.problems}")
    finally:
        store.close()
        conn.close()
    return report


def _check_webhooks(
    conn: sqlite3.Connection,
    report: Report,
    webhooks: dict[str, StoredWebhook],
    acked: set[str],
    sent: set[str],
    dead_ok: set[str],
) -> None:
    problems = report.problems
    report.stored = len(webhooks)
    statuses = Counter(w.status for w in webhooks.values())
    report.processed = statuses[WebhookStatus.PROCESSED]
    report.dead = statuses[WebhookStatus.DEAD]
    if lost := acked - webhooks.keys():
        problems.append(f"{len(lost)} acknowledged webhooks were lost: {_sample(lost)}")
    if foreign := webhooks.keys() - sent:
        problems.append(f"{len(foreign)} stored webhooks were never sent: {_sample(foreign)}")
    waiting = [i for i, w in webhooks.items() if w.status is WebhookStatus.RECEIVED]
    if waiting:
        problems.append(f"{len(waiting)} webhooks still unprocessed: {_sample(waiting)}")
    dead = {i for i, w in webhooks.items() if w.status is WebhookStatus.DEAD}
    if dead != dead_ok:
        problems.append(
            f"dead letters differ: unexpected {_sample(dead - dead_ok)}; missing"
            f" {_sample(dead_ok - dead)}"
        )
    letters = {r[0] for r in conn.execute("SELECT webhook_id FROM dead_letters")}
    if letters != dead:
        problems.append(
            f"dead_letters table disagrees with status 'dead': {_sample(letters ^ dead)}"
        )
    queued = conn.execute("SELECT count(*) FROM queue").fetchone()[0]
    pending = conn.execute("SELECT count(*) FROM changes").fetchone()[0]
    if queued or pending:
        problems.append(f"not drained: {queued} queue rows, {pending} unaudited changes")


def _check_audit_of_webhooks(
    conn: sqlite3.Connection, report: Report, webhooks: dict[str, StoredWebhook]
) -> None:
    """Each webhook inserted once, and moved to ``processed`` exactly once when processed."""
    inserts: Counter[str] = Counter()
    processed: Counter[str] = Counter()
    for row in conn.execute("SELECT entity_key, action, data FROM audit WHERE entity = 'webhook'"):
        if row["action"] == "insert":
            inserts[row["entity_key"]] += 1
        elif json.loads(row["data"]).get("status") == "processed":
            processed[row["entity_key"]] += 1
    bad_inserts = [i for i in webhooks if inserts[i] != 1] + [
        i for i in inserts if i not in webhooks
    ]
    if bad_inserts:
        report.problems.append(f"webhooks not audited as inserted once: {_sample(bad_inserts)}")
    twice = [i for i, n in processed.items() if n > 1]
    if twice:
        report.problems.append(f"{len(twice)} webhooks processed more than once: {_sample(twice)}")
    unaudited = [
        i for i, w in webhooks.items() if w.status is WebhookStatus.PROCESSED and not processed[i]
    ]
    if unaudited:
        report.problems.append(f"processed webhooks with no audit entry: {_sample(unaudited)}")


def _check_ledger(
    conn: sqlite3.Connection,
    report: Report,
    webhooks: dict[str, StoredWebhook],
    providers: Mapping[str, Provider],
) -> None:
    problems = report.problems
    done = sorted(
        (w for w in webhooks.values() if w.status is WebhookStatus.PROCESSED),
        key=lambda w: (w.processed_at or 0.0, w.webhook_id),
    )
    records: dict[tuple[str, str], PaymentRecord] = {}
    versions: Counter[tuple[str, str]] = Counter()
    published: Counter[tuple[str, str]] = Counter()
    causes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for webhook in done:
        events = providers[webhook.provider].payment_events(webhook)
        touched: dict[tuple[str, str], PaymentRecord | None] = {}
        for event in events:
            key = (event.provider, event.payment_id)
            touched.setdefault(key, records.get(key))
            records[key], _ = ledger.apply(records.get(key), event)
        for key, before in touched.items():
            after = records[key]
            if before is not None and before.events == after.events:
                continue  # as the processor: every fact already known, nothing written
            versions[key] += 1
            if before is None or before.state() != after.state():
                published[key] += 1
                causes[key].add(webhook.webhook_id)
    stored: dict[tuple[str, str], PaymentRecord] = {}
    for row in conn.execute("SELECT record FROM payments"):
        record = PaymentRecord.from_dict(json.loads(row["record"]))
        stored[(record.provider, record.payment_id)] = record
    report.payments = len(stored)
    report.payment_versions = sum(r.version for r in stored.values())
    if extra := stored.keys() - records.keys():
        problems.append(f"payment rows no processed webhook explains: {_sample(map(str, extra))}")
    if missing := records.keys() - stored.keys():
        problems.append(f"payments never written: {_sample(map(str, missing))}")
    for key in stored.keys() & records.keys():
        have, want = stored[key], records[key]
        if have.state() != want.state() or {e.key for e in have.events} != {
            e.key for e in want.events
        }:
            problems.append(f"payment {key} differs from the fold of its webhooks")
        if have.version != versions[key]:
            problems.append(f"payment {key} has version {have.version}, expected {versions[key]}")
    outbox: Counter[tuple[str, str]] = Counter()
    outbox_causes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in conn.execute("SELECT body FROM outbox"):
        event = json.loads(row["body"])
        key = (event["provider"], event["paymentId"])
        outbox[key] += 1
        outbox_causes[key].add(event["cause"]["webhookId"])
    report.outbox = sum(outbox.values())
    if outbox != published:
        wrong = [k for k in outbox.keys() | published.keys() if outbox[k] != published[k]]
        problems.append(
            f"outbox rows differ from state changes for {len(wrong)} payments:"
            f" {_sample(f'{k}: {outbox[k]} vs {published[k]}' for k in wrong)}"
        )
    elif outbox_causes != causes:
        problems.append("outbox events name other webhooks than the ones that changed the payment")
    _check_audit_of_payments(conn, report, stored)


def _check_audit_of_payments(
    conn: sqlite3.Connection, report: Report, stored: dict[tuple[str, str], PaymentRecord]
) -> None:
    """One audit entry per payment write: version entries for each payment."""
    entries: Counter[str] = Counter(
        row[0] for row in conn.execute("SELECT entity_key FROM audit WHERE entity = 'payment'")
    )
    wrong = [f"{p}/{i}" for (p, i), r in stored.items() if entries[f"{p}/{i}"] != r.version]
    if wrong or sum(entries.values()) != sum(r.version for r in stored.values()):
        report.problems.append(f"payment audit entries differ from versions: {_sample(wrong)}")
