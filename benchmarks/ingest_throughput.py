"""Durable ingest throughput against ``payhook serve``, beside a trivial endpoint, in one run.

A bounded loopback load of pre-signed, unique Stripe events (keep-alive connections, fixed
concurrency) hits ``POST /webhook/stripe``; the same load hits ``POST /trivial`` on the same
server process (same Starlette app, same uvicorn), an ordinary Starlette function endpoint
that reads the body and answers a small JSON (payhook's webhook route is a plain ASGI
endpoint in the same router). Rounds alternate so both see the same machine. After each
ingest round the script waits for the workers to drain the queue and the audit feed, and
reports how long that took.

    python benchmarks/ingest_throughput.py [--requests 4000] [--concurrency 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, median, percentile, update_section

SECRET = "whsec_ingest_benchmark"
AUDIT_KEY = "payhook-benchmark-audit-key-published-in-the-repo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(config: str) -> None:
    """Child process: ``payhook serve`` plus a trivial baseline route."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from payhook.config import load_settings
    from payhook.server.run import serve

    async def trivial(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    serve(load_settings(config), extra_routes=[Route("/trivial", trivial, methods=["POST"])])


def _requests(path: str, count: int, signed: bool) -> list[bytes]:
    from payhook.providers.stripe import sample_event, stripe_signature

    now = int(time.time())
    out = []
    for _ in range(count):
        body = json.dumps(sample_event("payment_intent.succeeded", now)).encode()
        headers = [
            f"POST {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        if signed:
            headers.append(f"Stripe-Signature: t={now},v1={stripe_signature(SECRET, now, body)}")
        out.append(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
    return out


async def _load(
    port: int, requests: list[bytes], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    iterator = iter(requests)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw in iterator:
                start = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                status = int(head.split(b" ", 2)[1])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(concurrency))), timeout=300)
    return time.perf_counter() - start, latencies, statuses


def _pending(db: str) -> int:
    conn = sqlite3.connect(db)
    try:
        queued = conn.execute("SELECT count(*) FROM queue").fetchone()[0]
        changes = conn.execute("SELECT count(*) FROM changes").fetchone()[0]
        return int(queued + changes)
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="processing worker threads")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="payhook-bench-"))
    port = _free_port()
    db = str(workdir / "payhook.db")
    config = workdir / "payhook.toml"
    config.write_text(
        f'[server]\nport = {port}\nworkers = {args.workers}\n[storage]\npath = "{db}"\n'
        f'[audit]\nkey = "{AUDIT_KEY}"\n[providers.stripe]\nsecrets = ["{SECRET}"]\n'
    )
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)
        rows = []
        ratios = []
        drains = []
        total_ingested = 0
        for round_no in range(1, args.rounds + 1):
            trivial = asyncio.run(
                _load(port, _requests("/trivial", args.requests, False), args.concurrency)
            )
            ingest_start = time.perf_counter()
            ingest = asyncio.run(
                _load(port, _requests("/webhook/stripe", args.requests, True), args.concurrency)
            )
            drain_deadline = time.monotonic() + (300 if args.workers else 0)
            while _pending(db) and time.monotonic() < drain_deadline:
                time.sleep(0.05)
            drained_after = time.perf_counter() - ingest_start
            left = _pending(db)
            total_ingested += ingest[2].get(200, 0)
            for name, (elapsed, lat, statuses) in (("trivial", trivial), ("ingest", ingest)):
                rows.append(
                    f"| {round_no} | {name} | {len(lat) / elapsed:,.0f} | "
                    f"{percentile(lat, 50) * 1000:.1f} | {percentile(lat, 99) * 1000:.1f} | "
                    f"{dict(sorted(statuses.items()))} |"
                )
            ratio = (len(ingest[1]) / ingest[0]) / (len(trivial[1]) / trivial[0])
            ratios.append(ratio)
            drains.append((drained_after, left, args.requests / drained_after))
            if ingest[2].get(200, 0) != args.requests:
                raise RuntimeError(f"not every webhook was accepted: {ingest[2]}")
        conn = sqlite3.connect(db)
        processed = conn.execute(
            "SELECT count(*) FROM webhooks WHERE status = 'processed'"
        ).fetchone()[0]
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=60)

    ratio = median(ratios)
    lines = [
        "## Durable ingest vs a trivial endpoint (`benchmarks/ingest_throughput.py`)",
        "",
        f"Machine: {machine()}.",
        f"Load: {args.requests} requests per phase, {args.concurrency} keep-alive connections,"
        f" {args.rounds} alternating rounds; client and server share the machine's cores."
        " The trivial endpoint is an ordinary Starlette function endpoint (Request, JSONResponse);"
        " payhook's webhook route is a plain ASGI endpoint in the same router.",
        "",
        "| round | endpoint | requests/s | p50 ms | p99 ms | statuses |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Durable ingest throughput = {ratio:.0%} of the trivial endpoint** (median of rounds;"
        " target >= 35%).",
        "",
        "Workers: "
        + "; ".join(
            f"round {i + 1}: queue and audit feed drained {d:.1f} s after the round began"
            f" ({rate:,.0f} webhooks/s end to end, {left} left)"
            for i, (d, left, rate) in enumerate(drains)
        )
        + f". Processed at the end: {processed} of {total_ingested} acknowledged.",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        update_section("ingest", report)
    return 0 if processed == total_ingested else 1


if __name__ == "__main__":
    sys.exit(main())
