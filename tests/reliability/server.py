"""``payhook serve`` as a subprocess with every available provider (tests and benchmarks)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from payhook.providers import Provider
from tests.conftest import AUDIT_TEST_KEY
from tests.e2e.conftest import PayhookServer
from tests.reliability import fleet


class ReliabilityServer(PayhookServer):
    """``payhook serve`` with every available provider; logs go to a file, not a pipe.

    (A pipe nobody reads fills up after 64 KiB of log lines and then blocks the server.)
    """

    def __init__(
        self,
        workdir: Path,
        names: list[str] | None = None,
        *,
        workers: int = 2,
        body_limit: int = 1048576,
        tolerance: int | None = fleet.LOAD_TOLERANCE_SECONDS,
        processing: dict[str, Any] | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.names = names if names is not None else fleet.available()
        self.tolerance = tolerance
        self.processing = {
            "visibility_timeout_seconds": 5,
            "max_receives": 3,
            "retry_base_seconds": 0.2,
            **(processing or {}),
        }
        self.overrides = overrides or {}
        self.starts = 0
        super().__init__(workdir, workers=workers, body_limit=body_limit)
        self.log = workdir / "serve.log"

    @property
    def db(self) -> Path:
        return self.workdir / "payhook.db"

    def sections(self) -> dict[str, dict[str, Any]]:
        out = fleet.sections(self.names, self.tolerance)
        for name, section in self.overrides.items():
            out[name] = {**out.get(name, {}), **section}
        return out

    def providers(self) -> dict[str, Provider]:
        """The server's providers, built in this process (to sign and to re-derive)."""
        return fleet.build(self.sections())

    def write_config(self, *, workers: int, body_limit: int = 1048576) -> None:
        self.workers, self.body_limit = workers, body_limit
        document: dict[str, Mapping[str, Any]] = {
            "server": {
                "host": "127.0.0.1",
                "port": self.port,
                "workers": workers,
                "body_limit_bytes": body_limit,
            },
            "admin": {"port": self.admin_port},
            "storage": {"path": str(self.workdir / "payhook.db")},
            "processing": self.processing,
            "audit": {"key": AUDIT_TEST_KEY},
            "providers": self.sections(),
        }
        self.config.write_text(fleet.toml(document))

    def reconfigure(self, overrides: dict[str, dict[str, Any]]) -> None:
        """Change provider sections; takes effect at the next start."""
        self.overrides = overrides
        self.write_config(workers=self.workers, body_limit=self.body_limit)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "payhook", "serve", "--config", str(self.config)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"payhook serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("payhook serve did not become healthy in 30 s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def counts(self) -> dict[str, int]:

        conn = sqlite3.connect(self.db)
        try:
            return {
                "webhooks": conn.execute("SELECT count(*) FROM webhooks").fetchone()[0],
                "queued": conn.execute("SELECT count(*) FROM queue").fetchone()[0],
                "changes": conn.execute("SELECT count(*) FROM changes").fetchone()[0],
            }
        finally:
            conn.close()

    def drained(self, timeout: float = 60.0) -> None:
        """Wait until the queue and the change feed are empty (the workers are done)."""

        def empty() -> bool:
            counts = self.counts()
            return counts["queued"] == 0 and counts["changes"] == 0

        self.wait_for(empty, timeout)
