"""Reliability harness: the real ``payhook serve`` with many providers, killed and starved.

Tests marked ``soak`` are long; they run only when selected (``pytest -m soak``), so the
default run stays short. Soak sizes scale with ``PAYHOOK_SOAK_SCALE`` (default 1).
When ``PAYHOOK_RELIABILITY_REPORT`` names a file, tests append their figures to it as JSON
lines (``benchmarks/soak.py`` turns them into a RESULTS.md section).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.server import ReliabilityServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long reliability run; only with -m soak")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long run: select it with -m soak (make soak)")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)


def soak_scale() -> float:
    return float(os.environ.get("PAYHOOK_SOAK_SCALE", "1"))


@pytest.fixture
def reliability_server(tmp_path: Path) -> Iterator[ReliabilityServer]:
    server = ReliabilityServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()


@pytest.fixture
def record_figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Append this test's figures to ``$PAYHOOK_RELIABILITY_REPORT`` (when set)."""

    def record(**figures: Any) -> None:
        target = os.environ.get("PAYHOOK_RELIABILITY_REPORT")
        if not target:
            return
        line = {"test": request.node.name, **figures}
        with open(target, "a") as fh:
            fh.write(json.dumps(line, default=str) + "\n")

    return record
