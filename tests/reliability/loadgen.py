"""A raw asyncio HTTP/1.1 keep-alive load client for loopback, bounded in count and time.

It survives the server dying under it: a request that gets no answer (refused, reset, cut
short) is recorded with ``status=None`` and the connection is re-opened. ``deliver`` adds what
a provider does: it retries every delivery that did not get a 2xx until all are acknowledged
or the deadline passes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Answer:
    index: int
    status: int | None  # None: no answer (connection refused, reset or cut short)
    latency: float
    body: bytes = b""


@dataclass(slots=True)
class Tally:
    """What a provider fleet saw: every attempt's status, and which deliveries got a 2xx."""

    statuses: Counter[int | None] = field(default_factory=Counter)
    acked: dict[int, Answer] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    attempts: int = 0
    elapsed: float = 0.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes, bool]:
    writer.write(raw)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    body = await reader.readexactly(length)
    return status, body, close


async def send(
    port: int,
    requests: Sequence[bytes],
    indices: Sequence[int] | None = None,
    *,
    concurrency: int = 16,
    request_timeout: float = 30.0,
    deadline: float | None = None,
    rate: float | None = None,
) -> list[Answer]:
    """Send ``requests[i]`` for each i in ``indices`` (default all) over keep-alive connections.

    With ``rate``, the n-th request is not sent before ``n / rate`` seconds (an open-loop
    schedule, as providers deliver). Stops taking new requests at ``deadline``
    (``time.monotonic()``); returns one answer per request sent.
    """
    todo = enumerate(indices if indices is not None else range(len(requests)))
    answers: list[Answer] = []
    began = time.monotonic()

    async def client() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for position, index in todo:
            if rate is not None:
                await asyncio.sleep(max(0.0, began + position / rate - time.monotonic()))
            if deadline is not None and time.monotonic() > deadline:
                break
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
                status, body, close = await asyncio.wait_for(
                    _exchange(*conn, requests[index]), request_timeout
                )
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                answers.append(Answer(index, None, time.perf_counter() - start))
                if conn is not None:
                    conn[1].close()
                conn = None
                await asyncio.sleep(0.02)  # the server is down: do not spin
                continue
            answers.append(Answer(index, status, time.perf_counter() - start, body))
            if close:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return answers


def deliver(
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int = 16,
    time_limit: float = 120.0,
    pause: float = 0.2,
) -> Tally:
    """Send every request, then keep retrying those without a 2xx, as providers do.

    Bounded by ``time_limit`` seconds; deliveries still unacknowledged then are simply not in
    ``acked``.
    """
    tally = Tally()
    start = time.monotonic()
    deadline = start + time_limit
    pending = list(range(len(requests)))
    while pending and time.monotonic() < deadline:
        answers = asyncio.run(
            send(port, requests, pending, concurrency=concurrency, deadline=deadline)
        )
        tally.answers += answers
        for answer in answers:
            tally.attempts += 1
            tally.statuses[answer.status] += 1
            if answer.status is not None and 200 <= answer.status < 300:
                tally.acked.setdefault(answer.index, answer)
                tally.latencies.append(answer.latency)
        pending = [i for i in pending if i not in tally.acked]
        if pending:
            time.sleep(pause)
    tally.elapsed = time.monotonic() - start
    return tally
