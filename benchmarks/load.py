"""Load: pre-signed deliveries from every provider against ``payhook serve``, then a full audit.

A bounded loopback load of unique signed events from each available provider (a share of
byte-identical redeliveries mixed in; some Stripe payments also get a refund) goes over raw
HTTP/1.1 keep-alive connections to the real ``payhook serve`` subprocess. Reported: accepted
webhooks/s, acknowledgment latency (p50/p99/max), and processing lag from acknowledgment to
processed (``processed_at - received_at`` in the database). Afterwards every acknowledged
webhook must be stored once, processed once, with one ledger write and one outbox row per
change (``tests/reliability/invariants.py``), and ``payhook audit verify`` must say ok.

Two phases, each on a fresh server: a burst (as fast as acknowledgments come back) and a
paced open-loop load at ``--rate`` deliveries/s, which shows the lag at a sustainable rate.

    python benchmarks/load.py [--deliveries 20000] [--rate 1000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, percentile, update_section
from payhook.config import ProcessingSettings
from tests.reliability import fleet, invariants, loadgen
from tests.reliability.server import ReliabilityServer


def _processed_by(db: Path, moment: float) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT count(*) FROM webhooks WHERE processed_at <= ?", (moment,))
        return int(row.fetchone()[0])
    finally:
        conn.close()


def _lags(db: Path) -> list[float]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT processed_at - received_at FROM webhooks WHERE processed_at IS NOT NULL"
        ).fetchall()
        return [float(r[0]) for r in rows]
    finally:
        conn.close()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


@dataclass
class Phase:
    """One run against a fresh server and database; ``rate`` None means as fast as possible."""

    label: str
    rate: float | None
    deliveries: int
    figures: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    signing: float = 0.0


def run_phase(phase: Phase, args: argparse.Namespace, names: list[str]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="payhook-load-"))
    server = ReliabilityServer(workdir, names, workers=args.workers)
    providers = server.providers()
    sign_start = time.perf_counter()
    batch = fleet.mixed(
        providers, phase.deliveries, duplicate_ratio=args.duplicates, seed=args.seed
    )
    requests = [d.http() for d in batch]
    phase.signing = time.perf_counter() - sign_start
    unique = {w for d in batch for w in d.webhook_ids}
    server.start()
    try:
        wall_start, start = time.time(), time.perf_counter()
        answers = asyncio.run(
            loadgen.send(
                server.port,
                requests,
                concurrency=args.concurrency,
                request_timeout=60,
                rate=phase.rate,
            )
        )
        elapsed = time.perf_counter() - start
        statuses = Counter(a.status for a in answers)
        acked = {a.index for a in answers if a.status == 200}
        latencies = [a.latency for a in answers if a.status == 200]
        server.drained(timeout=600)
        drained = time.perf_counter() - start
        lags = _lags(server.db)
        during_load = _processed_by(server.db, wall_start + elapsed)
        report = invariants.check(
            server.db,
            providers,
            acknowledged={w for i in acked for w in batch[i].webhook_ids},
            sent=unique,
        )
        verdict = cast(dict[str, Any], server.cli_json("audit", "verify"))
    finally:
        server.stop()
    phase.problems = list(report.problems)
    if not verdict["ok"]:
        phase.problems.append("payhook audit verify: BROKEN")
    if len(acked) != len(batch):
        phase.problems.append(f"{len(batch) - len(acked)} deliveries not acknowledged")
    phase.figures = {
        "offered": f"{phase.rate:,.0f}/s" if phase.rate else "as fast as acknowledged",
        "deliveries (unique events)": f"{len(batch):,} ({len(unique):,})",
        "accepted webhooks/s (2xx / load time)": f"{len(latencies) / elapsed:,.0f}",
        "load time": f"{elapsed:.1f} s",
        "acknowledgment latency p50 / p99 / max": f"{_ms(percentile(latencies, 50))} /"
        f" {_ms(percentile(latencies, 99))} / {_ms(max(latencies))} ms",
        "processing lag p50 / p99 / max": f"{_ms(percentile(lags, 50))} /"
        f" {_ms(percentile(lags, 99))} / {_ms(max(lags))} ms",
        "processed while the load ran": f"{during_load:,} of {len(unique):,}",
        "all processed and audited after": f"{drained:.1f} s"
        f" ({len(unique) / drained:,.0f} unique webhooks/s end to end)",
        "statuses": str(dict(sorted(statuses.items(), key=str))),
        "stored / processed / dead": f"{report.stored:,} / {report.processed:,} / {report.dead}",
        "payments / ledger writes / outbox rows": f"{report.payments:,} /"
        f" {report.payment_versions:,} / {report.outbox:,}",
        "audit entries, `payhook audit verify`": f"{report.audit_entries:,},"
        f" {'ok' if verdict['ok'] else 'BROKEN'}",
        "invariants": "exactly once" if not phase.problems else "VIOLATED",
    }


def _lag_note() -> str:
    settings = ProcessingSettings()
    return (
        "Processing never pauses for deliveries: the processing process (the default) takes"
        " turns with the server's writer and waits for at most the group in progress (with"
        " `separate_process = false`, every group commit carries at most one background"
        " write), so processing and the audit keep going under any load; batches of up to"
        f" {settings.batch_size} messages follow each other while full batches wait, and"
        " processing looks again every"
        f" {settings.poll_interval_seconds * 1000:g} ms once caught up"
        " (`processing.poll_interval_seconds`)."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20000, help="in the burst phase")
    parser.add_argument("--rate", type=float, default=1000, help="offered rate, paced phase")
    parser.add_argument("--seconds", type=float, default=15, help="length of the paced phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=2, help="processing threads (separate_process = false)"
    )
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of redeliveries")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()

    names = fleet.available()
    phases = [
        Phase("burst", None, args.deliveries),
        Phase("paced", args.rate, int(args.rate * args.seconds)),
    ]
    for phase in phases:
        run_phase(phase, args, names)
    problems = [f"{p.label}: {problem}" for p in phases for problem in p.problems]
    rows = [
        f"| {key} | " + " | ".join(p.figures[key] for p in phases) + " |"
        for key in phases[0].figures
    ]
    lines = [
        "## Load across providers (`benchmarks/load.py`)",
        "",
        f"Machine: {machine()}.",
        f"Pre-signed deliveries from {len(names)} providers ({', '.join(names)}), each event"
        f" type in turn, {args.duplicates:.0%} byte-identical redeliveries, about a third of"
        f" Stripe payments refunded later; {args.concurrency} keep-alive connections,"
        " default settings (processing and the audit in the processing process); a fresh"
        " server and database per phase; client and"
        " server share the machine's cores. Processing lag is `processed_at - received_at` from"
        " the database. PayPal is left out: " + fleet.LEFT_OUT["paypal"] + ".",
        "",
        "| figure | " + " | ".join(p.label for p in phases) + " |",
        "|---|" + "---|" * len(phases),
        *rows,
        "",
        (
            "**Every acknowledged webhook was processed exactly once** in both phases: stored"
            " once, one ledger write per change and one outbox row per state change (re-derived"
            " independently from the stored webhooks), no dead letters, audit chain verified."
            if not problems
            else "**INVARIANT VIOLATED**: " + "; ".join(problems)
        ),
        _lag_note(),
        "(Signing beforehand, outside the measurement: "
        + ", ".join(f"{p.label} {p.signing:.1f} s" for p in phases)
        + ".)",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_section("load", text)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
