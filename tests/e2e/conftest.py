"""Run the real ``payhook serve`` on a free loopback port."""

from __future__ import annotations

import json
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

STRIPE_SECRET = "whsec_e2e_secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PayhookServer:
    """One ``payhook serve`` subprocess with its own config and database."""

    def __init__(self, workdir: Path, *, workers: int = 2, body_limit: int = 1048576) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.admin_port = free_port()
        self.config = workdir / "payhook.toml"
        self.write_config(workers=workers, body_limit=body_limit)
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self, *, workers: int, body_limit: int = 1048576) -> None:
        self.config.write_text(
            f"""
[server]
host = "127.0.0.1"
port = {self.port}
workers = {workers}
body_limit_bytes = {body_limit}
[admin]
port = {self.admin_port}
[storage]
path = "{self.workdir / "payhook.db"}"
[processing]
visibility_timeout_seconds = 5
max_receives = 3
retry_base_seconds = 0.2
[audit]
key = "{AUDIT_TEST_KEY}"
[providers.stripe]
secrets = ["{STRIPE_SECRET}"]
[providers.standard]
secrets = ["{STANDARD_SECRET}"]
"""
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "payhook", "serve", "--config", str(self.config)],
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"payhook serve exited: {output}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("payhook serve did not become healthy in 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=60)
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None
        return code

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "payhook", *args, "--config", str(self.config)],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def cli_json(self, *args: str) -> object:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_for(self, predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError("condition not reached in time")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PayhookServer]:
    srv = PayhookServer(tmp_path)
    srv.start()
    yield srv
    if srv.process is not None:
        srv.stop()
