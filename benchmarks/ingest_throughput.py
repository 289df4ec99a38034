"""Durable ingest throughput against ``payhook serve``, beside a trivial endpoint, in one run.

Two modes against one server process (one Starlette app, one uvicorn), whose extra route
``POST /trivial`` is an ordinary Starlette function endpoint that reads the body and answers
a small JSON (payhook's webhook route is a plain ASGI endpoint in the same router):

- sustained: ``--seconds`` (30) of offered load at ``--concurrency`` (32) connections from
  wrk (``sustained.py``; a Python client when wrk is missing), each request a unique
  pre-signed Stripe delivery sent once, first to the trivial endpoint, then to
  ``/webhook/stripe``; then the drain until every acknowledged webhook is processed and
  audited. Reported: acknowledgments/s and their ratio to the trivial endpoint, latency,
  statuses, and the end-to-end rate (acknowledged and processed / (load + drain)).
- burst: ``--rounds`` alternating bursts of ``--requests`` (4000) to each endpoint, each
  followed by the drain.

    python benchmarks/ingest_throughput.py [--mode both|sustained|burst] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import sustained
from benchmarks.report import machine, median, update_section

SECRET = "whsec_ingest_benchmark"
AUDIT_KEY = "payhook-benchmark-audit-key-published-in-the-repo"
#: Unique deliveries signed for the sustained phase, per second of load: well above what one
#: process acknowledges, so that no request is sent twice.
MAX_RATE = 8000
DRAIN_TIMEOUT_SECONDS = 600
NO_DELIVERY_LOG = "[logging]\ndeliveries = false\n"
IN_THREADS = "[processing]\nseparate_process = false\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(config: str) -> None:
    """Child process: ``payhook serve`` plus a trivial baseline route and the thread names
    (for per-thread CPU)."""
    import threading

    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from payhook.config import load_settings
    from payhook.server.run import serve

    async def trivial(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    async def threads(request: Request) -> JSONResponse:
        return JSONResponse({str(t.native_id): t.name for t in threading.enumerate()})

    routes = [Route("/trivial", trivial, methods=["POST"]), Route("/threads", threads)]
    serve(load_settings(config), extra_routes=routes)


@contextmanager
def payhook_server(
    workers: int, extra: str = ""
) -> Iterator[tuple[int, str, subprocess.Popen[bytes]]]:
    """``payhook serve`` (with /trivial) on a fresh database: (port, database, process);
    ``extra`` is appended to its configuration."""
    workdir = Path(tempfile.mkdtemp(prefix="payhook-bench-"))
    port = _free_port()
    db = str(workdir / "payhook.db")
    config = workdir / "payhook.toml"
    config.write_text(
        f"[server]\nport = {port}\nworkers = {workers}\n[admin]\nenabled = false\n"
        f'[storage]\npath = "{db}"\n'
        f'[audit]\nkey = "{AUDIT_KEY}"\n[providers.stripe]\nsecrets = ["{SECRET}"]\n{extra}'
    )
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        yield port, db, server
    finally:
        server.terminate()
        server.wait(timeout=60)


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("server did not start") from None
            time.sleep(0.1)


def _thread_names(port: int) -> dict[int, str]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /threads HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b"".join(iter(lambda: sock.recv(65536), b""))
    names = json.loads(raw.partition(b"\r\n\r\n")[2])
    group = {"payhook-worker": "workers", "AnyIO worker": "threadpool"}
    return {
        int(tid): next((v for k, v in group.items() if name.startswith(k)), name)
        for tid, name in names.items()
    }


def _count(db: str, sql: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def _pending(db: str) -> int:
    return _count(db, "SELECT (SELECT count(*) FROM queue) + (SELECT count(*) FROM changes)")


def drain(db: str, timeout: float = DRAIN_TIMEOUT_SECONDS) -> float:
    """Seconds until the queue and the change feed are empty (bounded by ``timeout``)."""
    start = time.perf_counter()
    while _pending(db) and time.perf_counter() - start < timeout:
        time.sleep(0.02)
    return time.perf_counter() - start


def _cpu(pid: int) -> dict[int | str, float]:
    """CPU seconds so far of each thread of ``pid``, and of its processing process as a
    whole (under the key "processing process")."""
    used: dict[int | str, float] = dict(sustained.thread_cpu(pid))
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        used["processing process"] = sum(sustained.thread_cpu(int(child)).values())
    return used


def _cpu_line(
    before: dict[int | str, float], after: dict[int | str, float], names: dict[int, str], per: int
) -> str:
    used: dict[str, float] = {}
    for tid, seconds in after.items():
        name = tid if isinstance(tid, str) else names.get(tid, "other")
        used[name] = used.get(name, 0.0) + seconds - before.get(tid, 0.0)
    shown = sorted(((v, k) for k, v in used.items() if v >= 0.05), reverse=True)
    return ", ".join(f"{name} {v:.1f} s ({v / per * 1e6:,.0f} µs/webhook)" for v, name in shown)


def sustained_section(args: argparse.Namespace) -> tuple[str, bool]:
    with payhook_server(args.workers) as (port, db, server):
        requests = sustained.stripe_deliveries(
            "/webhook/stripe", SECRET, int(MAX_RATE * args.seconds)
        )
        trivial_requests = sustained.stripe_deliveries("/trivial", SECRET, 2000, signed=False)
        trivial = sustained.send_for(
            port, trivial_requests, seconds=args.seconds, connections=args.concurrency, cycle=True
        )
        cpu_before = _cpu(server.pid)
        load = sustained.send_for(
            port, requests, seconds=args.seconds, connections=args.concurrency
        )
        processed_during = _count(db, "SELECT count(*) FROM webhooks WHERE status = 'processed'")
        backlog = _pending(db)
        drained = drain(db)
        cpu_after = _cpu(server.pid)
        names = _thread_names(port)
        stored = _count(db, "SELECT count(*) FROM webhooks")
        processed = _count(db, "SELECT count(*) FROM webhooks WHERE status = 'processed'")
    # Where the time goes: the same load without the per-delivery log line, and with nothing
    # processed (workers = 0: no processing process; the audit thread still records each
    # receipt); then processing in threads of the server's process instead.
    variants = [
        (name, _load_only(args, workers, extra))
        for name, workers, extra in (
            ("payhook, no delivery log line", args.workers, NO_DELIVERY_LOG),
            ("payhook, no delivery log line, nothing processed", 0, NO_DELIVERY_LOG),
        )
    ]
    quiet, ceiling = (r.ack_rate / trivial.ack_rate for _, r in variants)
    threads, threads_e2e = load_and_drain(args, args.workers, IN_THREADS)
    variants.append(("payhook, `processing.separate_process = false`", threads))
    acked = load.acknowledged
    ratio = load.ack_rate / trivial.ack_rate
    e2e = acked / (load.seconds + drained)
    ok = processed == stored >= acked and not load.server_errors and not load.exhausted
    rows = [
        f"| {name} | {r.ack_rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} |"
        f" {dict(sorted(r.statuses.items()))} | {r.errors} |"
        for name, r in (("trivial", trivial), ("payhook `/webhook/stripe`", load), *variants)
    ]
    lines = [
        "## Sustained ingest vs a trivial endpoint (`benchmarks/ingest_throughput.py`)",
        "",
        f"Machine: {machine()}.",
        f"Load: {args.seconds:g} s per endpoint at {args.concurrency} keep-alive connections,"
        f" from {load.client}; each webhook request is a unique Stripe delivery signed"
        f" beforehand and sent once; trivial first, then payhook, on the same server process"
        f" (default settings: processing and the audit in the processing process), then the"
        " drain; client and server share the machine's cores.",
        "",
        "| endpoint | 2xx/s | p50 ms | p99 ms | max ms | statuses | socket errors |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Sustained acknowledgments = {ratio:.2f} of the trivial endpoint** (target >= 0.30;"
        f" p99 {load.p99_ms:.1f} ms, target <= 50 ms; {load.server_errors} 5xx).",
        "",
        f"**End to end: {e2e:,.0f} webhooks/s** acknowledged and processed ({acked:,}"
        f" acknowledged in {load.seconds:.1f} s, {processed_during:,} processed by the end of the"
        f" load, {backlog:,} queue and change rows left then, drained {drained:.1f} s later;"
        f" target >= 2,500/s). Processed at the end: {processed:,} of {stored:,} stored.",
        "",
        "The next two rows (each its own server, same load) show where the time goes:"
        f" without the JSON line per delivery (`[logging] deliveries = false`), payhook"
        f" acknowledges {quiet:.2f} of the trivial endpoint; with nothing processed as well"
        f" (`server.workers = 0`), the ceiling of acknowledging alone, {ceiling:.2f}.",
        "",
        f"With processing and the audit in threads of the server's process instead of a"
        f" process of their own (`[processing] separate_process = false`):"
        f" {threads.ack_rate:,.0f} acknowledged/s"
        f" ({threads.ack_rate / trivial.ack_rate:.2f} of the trivial endpoint), p99"
        f" {threads.p99_ms:.1f} ms, {threads_e2e:,.0f} webhooks/s end to end.",
        "",
        "CPU by thread over load and drain: "
        + _cpu_line(cpu_before, cpu_after, names, max(acked, 1))
        + ".",
    ]
    if load.exhausted:
        lines.append("**The load ran out of unique deliveries: raise MAX_RATE.**")
    return "\n".join(lines), ok


def _load(args: argparse.Namespace, port: int) -> sustained.LoadResult:
    """``args.seconds`` of unique signed Stripe deliveries at ``args.concurrency``
    connections."""
    requests = sustained.stripe_deliveries("/webhook/stripe", SECRET, int(MAX_RATE * args.seconds))
    return sustained.send_for(port, requests, seconds=args.seconds, connections=args.concurrency)


def _load_only(args: argparse.Namespace, workers: int, extra: str) -> sustained.LoadResult:
    """The sustained load against a fresh server configured with ``extra`` (no drain)."""
    with payhook_server(workers, extra) as (port, _, _):
        return _load(args, port)


def load_and_drain(
    args: argparse.Namespace, workers: int, extra: str = ""
) -> tuple[sustained.LoadResult, float]:
    """The sustained load against a fresh server configured with ``extra``, then the drain:
    the load's result and the end-to-end rate (acknowledged / (load + drain))."""
    with payhook_server(workers, extra) as (port, db, _):
        load = _load(args, port)
        drained = drain(db)
        processed = _count(db, "SELECT count(*) FROM webhooks WHERE status = 'processed'")
    if processed < load.acknowledged:
        raise RuntimeError(f"{extra!r}: {processed} of {load.acknowledged} processed")
    return load, load.acknowledged / (load.seconds + drained)


def burst_section(args: argparse.Namespace) -> tuple[str, bool]:
    rows, ratios, drains = [], [], []
    total = 0
    with payhook_server(args.workers) as (port, db, _):
        for round_no in range(1, args.rounds + 1):
            webhooks = sustained.stripe_deliveries("/webhook/stripe", SECRET, args.requests)
            plain = sustained.stripe_deliveries("/trivial", SECRET, args.requests, signed=False)
            trivial = sustained.burst(port, plain, args.concurrency)
            start = time.perf_counter()
            ingest = sustained.burst(port, webhooks, args.concurrency)
            drain(db, DRAIN_TIMEOUT_SECONDS if args.workers else 0)
            drained_after = time.perf_counter() - start
            if ingest.acknowledged != args.requests:
                raise RuntimeError(f"not every webhook was accepted: {ingest.statuses}")
            total += args.requests
            for name, r in (("trivial", trivial), ("ingest", ingest)):
                rows.append(
                    f"| {round_no} | {name} | {r.ack_rate:,.0f} | {r.p50_ms:.1f} |"
                    f" {r.p99_ms:.1f} | {dict(sorted(r.statuses.items()))} |"
                )
            ratios.append(ingest.ack_rate / trivial.ack_rate)
            drains.append((drained_after, _pending(db), args.requests / drained_after))
        processed = _count(db, "SELECT count(*) FROM webhooks WHERE status = 'processed'")
    lines = [
        "## Durable ingest bursts vs a trivial endpoint (`benchmarks/ingest_throughput.py`)",
        "",
        f"Machine: {machine()}.",
        f"Load: {args.requests} requests per phase, {args.concurrency} keep-alive connections"
        f" (Python asyncio client), {args.rounds} alternating rounds; client and server share"
        " the machine's cores. The trivial endpoint is an ordinary Starlette function endpoint"
        " (Request, JSONResponse); payhook's webhook route is a plain ASGI endpoint in the same"
        " router.",
        "",
        "| round | endpoint | requests/s | p50 ms | p99 ms | statuses |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Durable ingest bursts = {median(ratios):.2f} of the trivial endpoint** (median of"
        " rounds; target >= 0.45).",
        "",
        "Workers: "
        + "; ".join(
            f"round {i + 1}: queue and audit feed drained {d:.1f} s after the round began"
            f" ({rate:,.0f} webhooks/s end to end, {left} left)"
            for i, (d, left, rate) in enumerate(drains)
        )
        + f". Processed at the end: {processed} of {total} acknowledged.",
    ]
    return "\n".join(lines), processed == total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("both", "sustained", "burst"), default="both")
    parser.add_argument("--seconds", type=float, default=30, help="sustained load per endpoint")
    parser.add_argument("--requests", type=int, default=4000, help="per burst")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating bursts")
    parser.add_argument(
        "--workers", type=int, default=2, help="processing threads (separate_process = false)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return 0
    ok = True
    for mode, section, run in (
        ("sustained", "ingest_sustained", sustained_section),
        ("burst", "ingest", burst_section),
    ):
        if args.mode in (mode, "both"):
            report, passed = run(args)
            ok = ok and passed
            print(report + "\n", flush=True)
            if not args.no_write:
                update_section(section, report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
