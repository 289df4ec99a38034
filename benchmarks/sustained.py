"""Sustained load for the benchmarks: unique pre-signed deliveries sent for a fixed time.

The load generator is ``wrk`` (C, epoll) driven by ``deliveries.lua``, so that the client is
not what limits the server on a 2-core machine; without wrk on the PATH a Python asyncio
client sends the same requests, and ``LoadResult.client`` says which one ran. Each request
is sent once: a unique Stripe event (its own event id and payment), signed beforehand.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import percentile

LUA_SCRIPT = Path(__file__).with_name("deliveries.lua")
WRK_THREADS = 2  # one per core: wrk shares the machine with the server


@dataclass(frozen=True, slots=True)
class LoadResult:
    client: str
    seconds: float
    requests: int  # answered
    statuses: dict[int, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect, read, write errors and timeouts
    exhausted: bool  # a thread ran out of unique requests before the time was up

    @property
    def acknowledged(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def ack_rate(self) -> float:
        return self.acknowledged / self.seconds

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def stripe_deliveries(path: str, secret: str, count: int, *, signed: bool = True) -> list[bytes]:
    """``count`` raw HTTP/1.1 requests, each a distinct Stripe ``payment_intent.succeeded``
    event (its own event id and payment id) signed with ``secret`` at the current time."""
    from payhook.providers.hmac import HmacEngine
    from payhook.providers.stripe import SCHEME, sample_event

    now = int(time.time())
    engine = HmacEngine(SCHEME, [secret], tolerance_seconds=0, clock=lambda: 0.0)
    # One sample, re-identified per request: building a sample costs ten times the signing.
    template = sample_event("payment_intent.succeeded", now)
    obj = template["data"]["object"]
    out = []
    for index in range(count):
        event = {**template, "id": f"evt_bench{index:010d}{now}"}
        event["data"] = {**template["data"], "object": {**obj, "id": f"pi_bench{index:010d}{now}"}}
        body = json.dumps(event).encode()
        headers = [
            f"POST {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        if signed:
            headers.append(
                f"Stripe-Signature: {engine.sign(body, timestamp=now)['stripe-signature']}"
            )
        out.append(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
    return out


def wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    found = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (found.stdout + found.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def send_for(
    port: int,
    requests: Sequence[bytes],
    *,
    seconds: float,
    connections: int,
    cycle: bool = False,
) -> LoadResult:
    """Send ``requests`` over ``connections`` keep-alive connections for ``seconds``."""
    version = wrk_version()
    if version is None:
        return asyncio.run(_python_load(port, requests, seconds, connections, cycle))
    with tempfile.TemporaryDirectory(prefix="payhook-wrk-") as tmp:
        prefix = Path(tmp, "requests")
        for thread in range(WRK_THREADS):
            with open(f"{prefix}.{thread}", "wb") as out:
                for raw in requests[thread::WRK_THREADS]:
                    out.write(b"%d\n" % len(raw) + raw)
        command = [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "30s",
            "-s",
            str(LUA_SCRIPT),
            f"http://127.0.0.1:{port}",
            "--",
            str(prefix),
            *(["cycle"] if cycle else []),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    return LoadResult(
        client=f"{version} ({WRK_THREADS} threads, deliveries.lua)",
        seconds=data["duration_us"] / 1e6,
        requests=data["requests"],
        statuses={int(k): v for k, v in data["statuses"].items()},
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")),
        exhausted=data["exhausted_threads"] > 0,
    )


def burst(port: int, requests: Sequence[bytes], connections: int) -> LoadResult:
    """Every request once over ``connections`` connections, as fast as answers come back
    (the Python client: a burst of a few thousand is over before wrk would matter)."""
    return asyncio.run(_python_load(port, requests, 300, connections, cycle=False))


async def _python_load(
    port: int, requests: Sequence[bytes], seconds: float, connections: int, cycle: bool
) -> LoadResult:
    """The fallback client: raw HTTP/1.1 over asyncio streams, one request at a time per
    connection, every request once (or round and round with ``cycle``)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    source: Iterator[bytes] = itertools.cycle(requests) if cycle else iter(requests)
    exhausted = False

    async def client() -> None:
        nonlocal exhausted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                raw = next(source, None)
                if raw is None:
                    exhausted = True
                    return
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
    await asyncio.wait_for(
        asyncio.gather(*(client() for _ in range(connections))), timeout=seconds + 60
    )
    elapsed = time.perf_counter() - start
    return LoadResult(
        client="Python asyncio client (wrk not found)",
        seconds=elapsed,
        requests=len(latencies),
        statuses=statuses,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
        errors=0,
        exhausted=exhausted,
    )


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of each thread of process ``pid``, by native thread
    id; empty where there is no /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = stat.rpartition(")")[2].split()
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return out
