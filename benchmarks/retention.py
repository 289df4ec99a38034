"""Retention on a large database: the payloads of 100,000 processed webhooks purged.

Builds a database of ``--webhooks`` Stripe webhooks (signed samples verified by the real
provider, stored through the group-commit writer, then marked processed and aged past
``storage.retention_days``), runs the purge ``payhook serve`` runs in the background (and
``payhook purge``), and reports payload bytes before and after, the time taken, and that
redeliveries of purged webhooks are still acknowledged as duplicates.

    python benchmarks/retention.py [--webhooks 100000] [--no-write]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, update_section
from payhook.backends.sqlite import GroupCommitWriter, initialize
from payhook.backends.sqlite.retention import purge_payloads
from payhook.config import parse_settings
from payhook.core.model import Stored, StoredWebhook
from payhook.providers import build_providers
from payhook.service.ingest import Ingest

SECRET = "whsec_retention_benchmark_secret"
DAY = 86_400
REDELIVERED = 1000


def build(path: Path, count: int) -> list[StoredWebhook]:
    """``count`` distinct Stripe webhooks stored, processed, and 40 days old."""
    settings = parse_settings({"providers": {"stripe": {"secrets": [SECRET]}}})
    providers = build_providers(settings.providers)
    ingest = Ingest(providers)
    stripe = providers["stripe"]
    kinds = ("payment_intent.succeeded", "charge.refunded", "payment_intent.payment_failed")
    initialize(path)
    writer = GroupCommitWriter(path)
    writer.start()
    sample: list[StoredWebhook] = []
    try:
        batch: list[StoredWebhook] = []
        for index in range(count):
            request = stripe.sample_request(kinds[index % len(kinds)])
            batch += ingest.verify("stripe", request)
            if len(batch) == 500 or index == count - 1:
                assert writer.store(batch) == [Stored.NEW] * len(batch)
                sample += batch[: max(0, REDELIVERED - len(sample))]
                batch = []
    finally:
        writer.stop()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "UPDATE webhooks SET status = 'processed', processed_at = received_at,"
            " received_at = received_at - ?",
            (40 * DAY,),
        )
        conn.execute("DELETE FROM queue")
    conn.close()
    return sample


def figures(path: Path) -> tuple[int, int, int]:
    """(payload bytes, database bytes, free bytes)."""
    conn = sqlite3.connect(path)
    try:
        payload = conn.execute("SELECT coalesce(sum(length(payload)), 0) FROM webhooks").fetchone()
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(payload[0]), pages * page, free * page
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="payhook-retention-")) / "payhook.db"
    started = time.perf_counter()
    sample = build(path, args.webhooks)
    built = time.perf_counter() - started
    before, size_before, _ = figures(path)

    started = time.perf_counter()
    report = purge_payloads(path, older_than=time.time() - 30 * DAY)
    took = time.perf_counter() - started
    after, size_after, free_after = figures(path)

    writer = GroupCommitWriter(path)
    writer.start()
    try:
        again = writer.store(sample)
    finally:
        writer.stop()
    duplicates = sum(result is Stored.DUPLICATE for result in again)

    # Emptied payloads leave room inside the pages of old rows, which new rows (appended in
    # rowid order) do not reuse: VACUUM (with the server stopped) gives it back.
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")
    conn.close()
    vacuum = time.perf_counter() - started
    _, size_vacuumed, _ = figures(path)

    mib = 1024 * 1024
    markdown = "\n".join(
        [
            "## Retention on 100,000 webhooks (`benchmarks/retention.py`)",
            "",
            f"Machine: {machine()}.",
            f"{args.webhooks:,} Stripe webhooks stored through the writer ({built:.1f} s),"
            " marked processed and aged 40 days; then the purge `payhook serve` runs hourly"
            " (and `payhook purge` on demand), in transactions of 1,000 rows.",
            "",
            "| | before | after the purge | after `VACUUM` |",
            "|---|---|---|---|",
            f"| payload bytes | {before / mib:,.1f} MiB | {after / mib:,.1f} MiB | |",
            f"| database file | {size_before / mib:,.1f} MiB | {size_after / mib:,.1f} MiB"
            f" ({free_after / mib:,.1f} MiB on free pages) | {size_vacuumed / mib:,.1f} MiB"
            f" ({vacuum:.1f} s) |",
            "",
            "Payloads of ~2 KB live inside their rows' pages: purging empties those pages but"
            " new rows are appended after them, so the file shrinks only with `VACUUM` (run it"
            " with the server stopped: `sqlite3 var/payhook.db VACUUM`).",
            "",
            f"**Purged {report.webhooks:,} payloads ({report.payload_bytes / mib:,.1f} MiB) in"
            f" {took:.2f} s** ({report.webhooks / took:,.0f} webhooks/s). Redelivered after the"
            f" purge: {duplicates:,} of {len(sample):,} acknowledged as duplicates, none stored"
            " again.",
        ]
    )
    print(markdown)
    assert report.webhooks == args.webhooks
    assert after == 0
    assert duplicates == len(sample)
    if not args.no_write:
        update_section("Retention on 100,000 webhooks", markdown)


if __name__ == "__main__":
    main()
