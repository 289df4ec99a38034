"""Faults: SIGKILL under load, storage locked by another process, workers dying around their
commit, poison events. After each: every webhook that got a 2xx is processed (or a dead
letter), stored once, applied once, and the audit chain verifies (``invariants.check``).
"""

from __future__ import annotations

import inspect
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from payhook.backends.sqlite import (
    GroupCommitWriter,
    SqliteAuditLog,
    SqliteQueue,
    connect,
    initialize,
)
from payhook.core.chain_key import HmacChainKey
from payhook.core.model import WebhookRequest
from payhook.service.ingest import Ingest
from tests.conftest import AUDIT_TEST_KEY
from tests.reliability import fleet, invariants, loadgen
from tests.reliability.conftest import soak_scale
from tests.reliability.server import ReliabilityServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _ids(batch: list[fleet.Delivery], indices: Any = None) -> set[str]:
    chosen = batch if indices is None else [batch[i] for i in indices]
    return {webhook_id for d in chosen for webhook_id in d.webhook_ids}


def _assert_clean(report: invariants.Report) -> None:
    assert report.problems == [], "\n".join(report.problems)
    assert report.audit_ok


def _audit_verified_by_cli(server: ReliabilityServer) -> None:
    verdict = server.cli_json("audit", "verify")
    assert verdict["ok"] is True, verdict  # type: ignore[index]


# SIGKILL under load -------------------------------------------------------------------------


def _kill_under_load(
    server: ReliabilityServer, *, deliveries: int, kills: int, seed: int
) -> dict[str, Any]:
    providers = server.providers()
    batch = fleet.mixed(providers, deliveries, duplicate_ratio=0.1, seed=seed)
    unique = len(_ids(batch))
    rng = random.Random(seed)
    # Kill points as shares of the stored webhooks: each lands mid-load, at a random moment.
    thresholds = sorted(rng.uniform(0.05, 0.9) * unique for _ in range(kills))
    done = threading.Event()
    killed: list[float] = []
    failures: list[BaseException] = []

    def killer() -> None:
        try:
            for threshold in thresholds:
                deadline = time.monotonic() + 60
                while server.counts()["webhooks"] < threshold and not done.is_set():
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.05))
                assert server.stop(signal.SIGKILL) == -signal.SIGKILL
                killed.append(time.monotonic())
                time.sleep(rng.uniform(0, 0.3))  # down for a while: providers see refusals
                server.start()
        except BaseException as exc:  # surfaced in the test thread
            failures.append(exc)

    thread = threading.Thread(target=killer, name="killer", daemon=True)
    thread.start()
    tally = loadgen.deliver(
        server.port, [d.http() for d in batch], concurrency=16, time_limit=120 * soak_scale()
    )
    done.set()
    thread.join(timeout=90)
    assert not failures, failures
    assert len(killed) == kills, "the load ended before every kill point"
    assert len(tally.acked) == len(batch), f"unacknowledged after retries: {tally.statuses}"
    server.drained()
    report = invariants.check(
        server.db, providers, acknowledged=_ids(batch, tally.acked), sent=_ids(batch)
    )
    _assert_clean(report)
    assert report.stored == unique
    assert set(tally.statuses) <= {200, 503, None}, tally.statuses
    _audit_verified_by_cli(server)
    return {
        "kills": len(killed),
        "deliveries": len(batch),
        "attempts": tally.attempts,
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        **report.figures(),
    }


def test_acknowledged_webhooks_survive_sigkill_under_load(
    reliability_server: ReliabilityServer, record_figures: Callable[..., None]
) -> None:
    record_figures(**_kill_under_load(reliability_server, deliveries=1500, kills=3, seed=1))


def _fresh_server(tmp_path: Path, round_no: int) -> ReliabilityServer:
    """A new server and database per soak round: each round's invariants are its own."""
    workdir = tmp_path / f"round{round_no}"
    workdir.mkdir()
    server = ReliabilityServer(workdir)
    server.start()
    return server


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_acknowledged_webhooks_survive_many_sigkills_under_load(
    tmp_path: Path, record_figures: Callable[..., None]
) -> None:
    for round_no in range(int(5 * soak_scale())):
        server = _fresh_server(tmp_path, round_no)
        try:
            figures = _kill_under_load(server, deliveries=6000, kills=6, seed=100 + round_no)
        finally:
            if server.process is not None:
                server.stop()
        record_figures(round=round_no, **figures)


# storage locked by another process ----------------------------------------------------------

# How long the writer waits for SQLite's lock before a group fails (connect(timeout=...)).
WRITER_BUSY_TIMEOUT: float = getattr(
    GroupCommitWriter,
    "busy_timeout_seconds",
    inspect.signature(connect).parameters["timeout"].default,
)


def _hold_exclusive_lock(db: Path, seconds: float, taken: threading.Event) -> None:
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        taken.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _locked_storage(
    server: ReliabilityServer, *, hold: float, deliveries: int, seed: int = 7
) -> dict[str, Any]:
    """Another process holds SQLite's write lock for ``hold`` s while deliveries keep coming.

    The first group the writer tries (here: one probe delivery, sent first) fails after the
    busy timeout with a 503; later groups wait for the lock, and fail too if it is held past
    another busy timeout. Providers retry every non-2xx until it is acknowledged.
    """
    server.drained()  # idle: the probe is the first write the writer attempts
    providers = server.providers()
    probe_delivery, *rest = fleet.mixed(providers, deliveries, duplicate_ratio=0.1, seed=seed)
    batch = [d for d in rest if d.webhook_ids != probe_delivery.webhook_ids]
    before = server.counts()["webhooks"]
    taken = threading.Event()
    locker = threading.Thread(target=_hold_exclusive_lock, args=(server.db, hold, taken))
    locker.start()
    assert taken.wait(30)
    locked_at = time.monotonic()
    probe: dict[str, Any] = {}

    def send_probe() -> None:
        response = httpx.post(
            f"{server.url}{probe_delivery.path}",
            content=probe_delivery.request.body,
            headers=probe_delivery.request.headers,
            timeout=120,
        )
        probe.update(
            status=response.status_code,
            retry_after=response.headers.get("retry-after"),
            body=response.text,
            seconds=time.monotonic() - locked_at,
            stored_meanwhile=server.counts()["webhooks"] - before,
        )

    prober = threading.Thread(target=send_probe)
    prober.start()
    time.sleep(0.3)  # the probe's group is the one waiting for the lock
    tally = loadgen.deliver(server.port, [d.http() for d in batch], concurrency=16, time_limit=180)
    prober.join(timeout=120)
    locker.join(timeout=120)
    all_acked_after = time.monotonic() - locked_at
    assert server.alive()
    assert probe["status"] == 503, probe
    assert probe["retry_after"] == "5"
    assert json.loads(probe["body"])["error"] == "storage_unavailable"
    if probe["seconds"] < hold:  # answered while the lock was still held
        assert probe["stored_meanwhile"] == 0
    assert set(tally.statuses) <= {200, 503}, tally.statuses
    assert len(tally.acked) == len(batch)
    server.drained()
    report = invariants.check(
        server.db,
        providers,
        acknowledged=_ids(batch, tally.acked),
        sent=_ids(batch) | set(probe_delivery.webhook_ids),
    )
    _assert_clean(report)
    assert not set(probe_delivery.webhook_ids) & _stored_ids(server.db), "a 503 was stored"
    _audit_verified_by_cli(server)
    load_503 = [a.latency for a in tally.answers if a.status == 503]
    return {
        "hold_seconds": hold,
        "writer_busy_timeout": WRITER_BUSY_TIMEOUT,
        "probe_503_after_seconds": round(probe["seconds"], 2),
        "load_503s": len(load_503),
        "slowest_answer_seconds": round(max(a.latency for a in tally.answers), 2),
        "all_acknowledged_after_seconds": round(all_acked_after, 1),
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        **report.figures(),
    }


def _stored_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute("SELECT webhook_id FROM webhooks")}
    finally:
        conn.close()


def test_storage_locked_by_another_process_answers_503_then_recovers(
    reliability_server: ReliabilityServer, record_figures: Callable[..., None]
) -> None:
    figures = _locked_storage(reliability_server, hold=WRITER_BUSY_TIMEOUT + 1.5, deliveries=600)
    record_figures(**figures)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_long_storage_outages_answer_503_and_lose_nothing(
    tmp_path: Path, record_figures: Callable[..., None]
) -> None:
    # Held past two busy timeouts: the deliveries waiting behind the probe get 503s too.
    for round_no in range(int(3 * soak_scale())):
        server = _fresh_server(tmp_path, round_no)
        try:
            figures = _locked_storage(
                server, hold=2 * WRITER_BUSY_TIMEOUT + 3, deliveries=4000, seed=70 + round_no
            )
        finally:
            if server.process is not None:
                server.stop()
        assert figures["load_503s"] > 0
        record_figures(round=round_no, **figures)


# a worker dying around its commit ------------------------------------------------------------


def _stored_batch(db: Path, count: int) -> tuple[dict[str, Any], list[fleet.Delivery]]:
    """Store ``count`` deliveries from every provider with the real ingest and writer."""
    providers = fleet.build(fleet.sections(fleet.available(), fleet.LOAD_TOLERANCE_SECONDS))
    batch = fleet.mixed(providers, count, duplicate_ratio=0.0, seed=3)
    initialize(db)
    writer = GroupCommitWriter(db)
    writer.start()
    try:
        ingest = Ingest(providers)
        for d in batch:
            assert ingest.receive(d.provider, d.request, writer).status == 200
    finally:
        writer.stop()
    return providers, batch


def _worker(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.worker", str(db), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


@pytest.mark.parametrize("die", ["after-commit", "inside-commit"])
def test_a_message_back_from_a_worker_killed_around_its_commit_is_applied_once(
    tmp_path: Path, die: str
) -> None:
    """Worker A takes every message, computes the first one's effects and is SIGKILLed right
    after its commit (or inside it). The visibility timeout hands the messages to worker B,
    which computed the same effects from the same ``received`` webhook before A's commit.
    """
    db = tmp_path / "payhook.db"
    providers, batch = _stored_batch(db, 40)
    visibility = 1.0
    flag = tmp_path.joinpath
    a = _worker(
        db,
        "--die", die,
        "--received", str(flag("a.received")),
        "--commit-after", str(flag("b.computed")),
        "--visibility", str(visibility),
    )  # fmt: skip
    _wait_file(flag("a.received"))
    time.sleep(visibility + 0.2)  # A's messages become visible again: B receives them
    b = _worker(
        db,
        "--signal-computed", str(flag("b.computed")),
        "--commit-after", str(flag("a.dead")),
        "--report", str(flag("b.json")),
        "--visibility", "30",
    )  # fmt: skip
    assert a.wait(timeout=60) == -signal.SIGKILL, a.stderr.read() if a.stderr else ""
    flag("a.dead").touch()
    assert b.wait(timeout=60) == 0, b.stderr.read() if b.stderr else ""
    outcomes = json.loads(flag("b.json").read_text())
    assert len(outcomes) == len(batch)  # B got every message back
    assert all(count == 2 for _, count, _ in outcomes)
    first_outcome = outcomes[0][2]
    # After A's commit B's commit is refused; inside it, nothing of A's survived.
    assert first_outcome == ("already_processed" if die == "after-commit" else "processed")
    assert SqliteQueue(db).depth() == 0
    while SqliteAuditLog(db).drain(HmacChainKey(AUDIT_TEST_KEY)):
        pass
    report = invariants.check(db, providers, acknowledged=_ids(batch), sent=_ids(batch))
    _assert_clean(report)
    assert report.processed == len(batch)


# poison events ------------------------------------------------------------------------------

# A mapping typo: the currency is at data.currency, so major-unit amounts cannot be converted.
BROKEN_GENERIC = {"amount_units": "major", "currency_path": "data.currency_code"}
FIXED_GENERIC = {"amount_units": "major", "currency_path": "data.currency"}


def _stripe_poison(provider: Any) -> fleet.Delivery:
    """Authentic Stripe event whose data.object is not an object: stored, never processable."""
    from payhook.providers.stripe import sample_event, stripe_signature

    now = int(time.time())
    event = sample_event("payment_intent.succeeded", now)
    event["data"] = {"object": "pi_malformed"}
    body = json.dumps(event).encode()
    signature = stripe_signature(provider.config.secrets[0], now, body)
    request = WebhookRequest(
        body=body,
        headers={"content-type": "application/json", "stripe-signature": f"t={now},v1={signature}"},
    )
    return fleet.delivery(Ingest({"stripe": provider}), "stripe", request)


def _cli_dead_letters(server: ReliabilityServer) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], server.cli_json("dead-letters", "list"))


def _dead_letters(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute("SELECT webhook_id FROM dead_letters")}
    finally:
        conn.close()


def test_poison_events_become_dead_letters_and_a_redrive_after_a_fix_processes_them(
    tmp_path: Path,
) -> None:
    if "generic" not in fleet.available():
        pytest.skip("the generic provider has not landed")
    names = fleet.available(["stripe", "generic", "razorpay"])
    server = ReliabilityServer(tmp_path, names, overrides={"generic": BROKEN_GENERIC})
    fixed = fleet.build(
        {**server.sections(), "generic": {**server.sections()["generic"], **FIXED_GENERIC}}
    )
    server.start()
    try:
        poison = [
            fleet.delivery(Ingest(fixed), "generic", fixed["generic"].sample_request())
            for _ in range(5)
        ]
        poison.append(_stripe_poison(fixed["stripe"]))
        healthy = fleet.mixed({n: p for n, p in fixed.items() if n != "generic"}, 30, seed=5)
        batch = poison + healthy
        tally = loadgen.deliver(server.port, [d.http() for d in batch], time_limit=60)
        assert len(tally.acked) == len(batch)
        poisoned = _ids(poison)
        server.wait_for(lambda: _dead_letters(server.db) == poisoned, 60)
        server.drained()
        letters = _cli_dead_letters(server)
        assert {d["webhookId"] for d in letters} == poisoned
        assert all(d["receiveCount"] == 3 for d in letters)
        report = invariants.check(
            server.db,
            fleet.build(server.sections()),
            acknowledged=_ids(batch),
            sent=_ids(batch),
            expected_dead=poisoned,
        )
        _assert_clean(report)

        server.stop()
        server.reconfigure({"generic": FIXED_GENERIC})
        server.start()
        redrive = server.cli("dead-letters", "redrive")
        assert redrive.returncode == 0, redrive.stderr
        assert f"redriven: {len(poisoned)}" in redrive.stdout
        stripe_poison = _ids(poison[-1:])
        server.wait_for(lambda: _dead_letters(server.db) == stripe_poison, 60)
        server.drained()
        assert [d["webhookId"] for d in _cli_dead_letters(server)] == sorted(stripe_poison)
        report = invariants.check(
            server.db,
            fixed,
            acknowledged=_ids(batch),
            sent=_ids(batch),
            expected_dead=stripe_poison,
        )
        _assert_clean(report)
        assert report.processed == len(_ids(batch)) - 1
        _audit_verified_by_cli(server)
    finally:
        if server.process is not None:
            server.stop()
