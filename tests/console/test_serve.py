"""The console as ``payhook serve`` ships it: a subprocess with its admin listener, the
console behind the admin token, a delivery on the providers' listener seen on the console."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AUDIT_TEST_KEY
from tests.console.server import ADMIN_TOKEN, STRIPE_SECRET, stripe_request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``payhook serve`` on two loopback ports: (providers' URL, admin URL)."""
    public, admin = free_port(), free_port()
    config = tmp_path / "payhook.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {public}\nworkers = 1\n'
        f'[storage]\npath = "{tmp_path / "payhook.db"}"\n'
        f'[admin]\nhost = "127.0.0.1"\nport = {admin}\ntoken = "{ADMIN_TOKEN}"\n'
        f'[audit]\nkey = "{AUDIT_TEST_KEY}"\n'
        f'[providers.stripe]\nsecrets = ["{STRIPE_SECRET}"]\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "payhook", "serve", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    urls = (f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{urls[0]}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("payhook serve did not start")
            time.sleep(0.1)
        yield urls
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_payhook_serve_shows_a_delivery_on_its_console(served: tuple[str, str]) -> None:
    public, admin = served
    request = stripe_request("payment_intent.succeeded", int(time.time()), "pi_serve_1", 2500)
    answer = httpx.post(f"{public}/webhook/stripe", content=request.body, headers=request.headers)
    assert answer.status_code == 200
    with httpx.Client(base_url=admin) as client:
        assert client.get("/console/deliveries").status_code == 303  # to the login
        login = client.post("/console/login", data={"token": ADMIN_TOKEN})
        assert login.status_code == 303
        page = client.get("/console/deliveries")
        assert page.status_code == 200
        assert answer.json()["webhookId"] in page.text
        deadline = time.monotonic() + 20  # processed by the worker, then in the ledger
        while client.get("/console/payments/stripe/pi_serve_1").status_code != 200:
            assert time.monotonic() < deadline, "the payment never reached the console"
            time.sleep(0.1)
        assert client.get("/console/static/htmx.min.js").status_code == 200
