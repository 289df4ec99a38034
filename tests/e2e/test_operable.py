"""Operating the real ``payhook serve``: the admin listener's health, status and metrics, one
log line per delivery, a warning per dead letter, and start-up failures as one line."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from payhook.providers.stripe import sample_event, stripe_signature
from tests.e2e.conftest import STRIPE_SECRET, PayhookServer, free_port

pytestmark = pytest.mark.e2e


def _signed(event: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    now = int(time.time())
    body = json.dumps(event).encode()
    signature = stripe_signature(STRIPE_SECRET, now, body)
    return body, {"content-type": "application/json", "stripe-signature": f"t={now},v1={signature}"}


def _deliver(server: PayhookServer, event: dict[str, object]) -> httpx.Response:
    body, headers = _signed(event)
    return httpx.post(f"{server.url}/webhook/stripe", content=body, headers=headers, timeout=10)


def _metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format (labels in any order), or None."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        metric, _, rest = sample.partition("{")
        if metric == name and set(filter(None, rest.rstrip("}").split(","))) == wanted:
            return float(value)
    return None


def _stopped_output(server: PayhookServer) -> str:
    """Stop the server (SIGTERM) and return everything it printed."""
    assert server.process is not None
    process, server.process = server.process, None
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[0].decode()


def _log_lines(server: PayhookServer) -> list[dict[str, object]]:
    """Stop the server and return its JSON log lines."""
    output = _stopped_output(server)
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_a_poison_event_warns_in_health_counts_in_metrics_and_logs_one_warning(
    server: PayhookServer,
) -> None:
    # Authentic, stored, and never processable: data.object is not an object.
    event = sample_event("payment_intent.succeeded", int(time.time()))
    event["data"] = {"object": "pi_malformed"}
    answer = _deliver(server, event)
    assert answer.status_code == 200
    webhook_id = answer.json()["webhookId"]

    def health() -> dict[str, object]:
        return httpx.get(f"{server.admin_url}/healthz", timeout=10).json()  # type: ignore[no-any-return]

    server.wait_for(lambda: health()["status"] == "warn", timeout=60)
    response = httpx.get(f"{server.admin_url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/health+json")
    checks = response.json()["checks"]
    assert checks["deadLetters:count"][0]["status"] == "warn"
    assert checks["deadLetters:count"][0]["observedValue"] == 1
    assert checks["storage:writable"][0]["status"] == "pass"

    metrics = httpx.get(f"{server.admin_url}/metrics", timeout=10).text
    assert _metric(metrics, "payhook_dead_letters") == 1.0
    assert _metric(metrics, "payhook_deliveries_total", provider="stripe", status="200") == 1.0
    assert _metric(metrics, "payhook_processing_failures_total") == 3.0  # max_receives = 3

    status = httpx.get(f"{server.admin_url}/status", timeout=10).json()
    assert (status["status"], status["deadLetters"], status["queueDepth"]) == ("warn", 1, 0)
    # The providers' listener says only whether it serves: no counters, no provider names.
    public = httpx.get(f"{server.url}/healthz", timeout=10)
    assert (public.status_code, public.json()) == (200, {"status": "pass"})
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 404

    lines = _log_lines(server)
    dead = [line for line in lines if line["message"] == "webhook moved to dead letters"]
    assert [(line["level"], line["webhook_id"]) for line in dead] == [("WARNING", webhook_id)]


def test_every_delivery_is_counted_timed_and_logged_in_one_line(server: PayhookServer) -> None:
    event = sample_event("payment_intent.succeeded", int(time.time()), payment_id="pi_ops_1")
    first = _deliver(server, event)
    again = _deliver(server, event)
    body, headers = _signed(event)
    tampered = httpx.post(
        f"{server.url}/webhook/stripe", content=body + b" ", headers=headers, timeout=10
    )
    unknown = httpx.post(f"{server.url}/webhook/nope", content=b"{}", timeout=10)
    assert [r.status_code for r in (first, again, tampered, unknown)] == [200, 200, 401, 404]

    def processed() -> bool:
        text = httpx.get(f"{server.admin_url}/metrics", timeout=10).text
        return _metric(text, "payhook_processing_lag_seconds_count") == 1.0

    server.wait_for(processed)
    text = httpx.get(f"{server.admin_url}/metrics", timeout=10).text
    assert _metric(text, "payhook_deliveries_total", provider="stripe", status="200") == 2.0
    assert _metric(text, "payhook_deliveries_total", provider="stripe", status="401") == 1.0
    assert _metric(text, "payhook_deliveries_total", provider="unknown", status="404") == 1.0
    failures = _metric(
        text, "payhook_verification_failures_total", provider="stripe", reason="mismatch"
    )
    assert failures == 1.0
    assert _metric(text, "payhook_ack_seconds_count") == 4.0
    assert _metric(text, "payhook_queue_depth") == 0.0

    lines = [line for line in _log_lines(server) if line["message"] == "delivery"]
    assert [line["status"] for line in lines] == [200, 200, 401, 404]
    webhook_id = first.json()["webhookId"]
    assert (lines[0]["webhook_id"], lines[0]["event_id"]) == (webhook_id, event["id"])
    assert (lines[0]["duplicate"], lines[1]["duplicate"]) == (False, True)
    assert lines[2]["verification"] == "mismatch"
    assert all(isinstance(line["ms"], float | int) for line in lines)
    # Never a payload: the body's distinctive fields appear in no line.
    assert not any("pi_ops_1" in json.dumps(line) for line in lines)


def _serve(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "payhook", "serve", "--config", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    server = PayhookServer(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        done = _serve(server.config, tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""  # nothing said it serves
    assert done.stderr.strip().splitlines() == [
        f"payhook: cannot listen on 127.0.0.1:{server.port} (server.port): Address already in use"
    ]
    assert not (tmp_path / "payhook.db").exists()


def test_a_second_serve_on_a_live_database_refuses_and_leaves_the_first_untouched(
    server: PayhookServer, tmp_path: Path
) -> None:
    other = tmp_path / "second"
    other.mkdir()
    config = other / "payhook.toml"
    text = server.config.read_text()
    text = text.replace(f"port = {server.port}", f"port = {free_port()}")
    text = text.replace(f"port = {server.admin_port}", f"port = {free_port()}")
    config.write_text(text)
    lock = Path(f"{tmp_path / 'payhook.db'}.lock")
    before = lock.read_text()

    done = _serve(config, other)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"payhook: {tmp_path / 'payhook.db'} is in use by another payhook process"
    ]
    assert lock.read_text() == before
    event = sample_event("payment_intent.succeeded", int(time.time()))
    assert _deliver(server, event).status_code == 200


def test_the_admin_token_guards_the_admin_listener_and_logs_can_be_text(tmp_path: Path) -> None:
    server = PayhookServer(tmp_path)
    token = "an-admin-token-of-at-least-32-chars"
    server.config.write_text(
        server.config.read_text().replace(
            "[admin]\n", f'[logging]\nformat = "text"\n[admin]\ntoken = "{token}"\n'
        )
    )
    server.start()
    try:
        refused = httpx.get(f"{server.admin_url}/metrics", timeout=10)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        allowed = httpx.get(
            f"{server.admin_url}/metrics", headers={"authorization": f"Bearer {token}"}, timeout=10
        )
        assert allowed.status_code == 200
        assert "payhook_queue_depth" in allowed.text
        event = sample_event("payment_intent.succeeded", int(time.time()))
        assert _deliver(server, event).status_code == 200
    finally:
        output = _stopped_output(server)
    deliveries = [line for line in output.splitlines() if " delivery " in line]
    assert len(deliveries) == 1
    assert re.search(
        r' INFO payhook\.server delivery provider="stripe" .*status=200', deliveries[0]
    )
    assert not any(line.startswith("{") for line in output.splitlines())
