"""payhook beside the Stripe receiver a team writes from the tutorials, under the same load.

The tutorial receiver: FastAPI, ``stripe.Webhook.construct_event`` (the official library),
and one durable SQLite insert per request (WAL, ``synchronous=FULL``, a connection per thread,
in FastAPI's threadpool), served by uvicorn as payhook is (httptools, uvloop, no access log).
It only stores: no queue, no processing, no ledger, no audit trail. payhook runs as
``payhook serve`` with its workers and audit worker on (``ingest_throughput.py``'s server).

Each gets ``--seconds`` of sustained load at ``--concurrency`` connections from wrk (a Python
client when wrk is missing), each request a unique Stripe delivery signed beforehand and sent
once; payhook first, then the tutorial receiver, each in its own server process on the same
machine. Reported: 2xx/s, latency, statuses, and payhook's ratio to the tutorial receiver.

    python benchmarks/tutorial_receiver.py [--seconds 30] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import stripe
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import sustained
from benchmarks.ingest_throughput import (
    IN_THREADS,
    SECRET,
    _free_port,
    load_and_drain,
    wait_for_port,
)
from benchmarks.report import machine, update_section

TUTORIAL_RATE = 4000  # unique deliveries signed per second of load: far above what it takes


def tutorial_app(db_path: str, secret: str) -> FastAPI:
    """The receiver as the tutorials write it (FastAPI + the official ``stripe`` library)."""
    app = FastAPI()
    local = threading.local()

    def connection() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(db_path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # acknowledged means on disk
            local.conn = conn
        return conn

    def store(event_id: str, event_type: str, payload: bytes) -> None:
        connection().execute(
            "INSERT OR IGNORE INTO events (id, type, payload, received_at) VALUES (?, ?, ?, ?)",
            (event_id, event_type, payload, time.time()),
        )

    @app.post("/webhook")
    async def webhook(request: Request, stripe_signature: str = Header(...)) -> dict[str, bool]:
        payload = await request.body()
        try:
            event = stripe.Webhook.construct_event(payload, stripe_signature, secret)
        except ValueError:
            raise HTTPException(status_code=400, detail="invalid payload") from None
        except stripe.SignatureVerificationError:
            raise HTTPException(status_code=400, detail="invalid signature") from None
        await run_in_threadpool(store, event["id"], event["type"], payload)
        return {"received": True}

    return app


def _serve_tutorial(db_path: str, port: int) -> None:
    import uvicorn

    conn = sqlite3.connect(db_path)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT NOT NULL,"
        " payload BLOB NOT NULL, received_at REAL NOT NULL)"
    )
    conn.close()
    app = tutorial_app(db_path, SECRET)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _row(name: str, result: sustained.LoadResult, extra: str) -> str:
    return (
        f"| {name} | {result.ack_rate:,.0f} | {result.p50_ms:.1f} | {result.p99_ms:.1f} |"
        f" {result.max_ms:.1f} | {dict(sorted(result.statuses.items()))} | {extra} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=2, help="processing threads (separate_process = false)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--serve-tutorial", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_tutorial:
        _serve_tutorial(args.serve_tutorial[0], int(args.serve_tutorial[1]))
        return 0

    load = {"seconds": args.seconds, "connections": args.concurrency}
    ours, e2e = load_and_drain(args, args.workers)
    threads, threads_e2e = load_and_drain(args, args.workers, IN_THREADS)

    workdir = Path(tempfile.mkdtemp(prefix="payhook-tutorial-"))
    tutorial_db, tutorial_port = str(workdir / "tutorial.db"), _free_port()
    command = [sys.executable, __file__, "--serve-tutorial", tutorial_db, str(tutorial_port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(tutorial_port, server)
        signed = sustained.stripe_deliveries("/webhook", SECRET, int(TUTORIAL_RATE * args.seconds))
        theirs = sustained.send_for(tutorial_port, signed, **load)
    finally:
        server.terminate()
        server.wait(timeout=60)
    stored = sqlite3.connect(tutorial_db).execute("SELECT count(*) FROM events").fetchone()[0]

    ratio = ours.ack_rate / theirs.ack_rate
    ok = not (ours.server_errors or threads.server_errors or ours.exhausted or theirs.exhausted)
    lines = [
        "## payhook vs the tutorial receiver (`benchmarks/tutorial_receiver.py`)",
        "",
        f"Machine: {machine()}.",
        f"Load: {args.seconds:g} s at {args.concurrency} keep-alive connections per receiver,"
        f" from {ours.client}; each request a unique Stripe delivery signed beforehand and sent"
        " once; payhook first, then the tutorial receiver, each in its own server process;"
        " client and server share the machine's cores. The tutorial receiver is FastAPI +"
        " `stripe.Webhook.construct_event` + one `synchronous=FULL` SQLite insert per request"
        " in the threadpool (WAL), served by uvicorn like payhook; it only stores. payhook"
        " also queues, processes and audits every webhook meanwhile (by default in a process"
        " of its own).",
        "",
        "| receiver | 2xx/s | p50 ms | p99 ms | max ms | statuses | also |",
        "|---|---|---|---|---|---|---|",
        _row("payhook", ours, f"{e2e:,.0f}/s processed and audited end to end"),
        _row(
            f"payhook, `processing.separate_process = false` ({args.workers} threads)",
            threads,
            f"{threads_e2e:,.0f}/s processed and audited end to end",
        ),
        _row("tutorial (FastAPI + stripe + SQLite)", theirs, f"{stored:,} rows stored"),
        "",
        f"**payhook acknowledges {ratio:.2f}x the tutorial receiver's sustained rate**"
        f" (target >= 3x); with processing in threads of the server's process,"
        f" {threads.ack_rate / theirs.ack_rate:.2f}x.",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        update_section("tutorial", report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
