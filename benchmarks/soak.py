"""Soak: the long reliability runs (``pytest -m soak tests/reliability``), summarized.

Runs the soak-marked tests (SIGKILL rounds under load, long storage outages, ~33,000
hypothesis-driven hostile requests and, when schemathesis is installed, ~20,000 schemathesis
requests against /openapi.json), collects the figures each test records, and writes them to
RESULTS.md. Every loop is bounded; everything runs on loopback.

    python benchmarks/soak.py [--scale 1.0] [--no-write]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, update_section

ROOT = Path(__file__).resolve().parents[1]
FUZZ_TESTS = ("hostile", "framing", "schemathesis")


def _run(scale: float, report: Path) -> tuple[int, float, str]:
    env = {
        **os.environ,
        "PAYHOOK_SOAK_SCALE": str(scale),
        "PAYHOOK_RELIABILITY_REPORT": str(report),
    }
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "soak",
            "tests/reliability",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=4 * 3600,
    )
    tail = "\n".join(result.stdout.strip().splitlines()[-3:])
    return result.returncode, time.monotonic() - start, tail


def _rows(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, int]]:
    rows, totals = [], Counter[str]()
    for r in records:
        name = r.pop("test").removeprefix("test_soak_")
        statuses: dict[str, int] = r.pop("statuses", {})
        if any(t in name for t in FUZZ_TESTS):
            totals["fuzzed requests"] += r.get("requests", 0)
            # Keys are "401" (hypothesis) or "POST /webhook/{provider} 401" (schemathesis).
            totals["5xx"] += sum(v for k, v in statuses.items() if k.split()[-1][0] == "5")
        totals["kills"] += r.get("kills", 0)
        totals["acknowledged"] += r.get("acknowledged", 0)
        totals["problems"] += r.get("problems", 0)
        figures = ", ".join(f"{k} {v}" for k, v in r.items())
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        rows.append(f"| {name} | {figures} | {shown} |")
    return rows, dict(totals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every soak size")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "figures.jsonl"
        report.touch()
        code, seconds, tail = _run(args.scale, report)
        records = [json.loads(line) for line in report.read_text().splitlines() if line]
    rows, totals = _rows(records)
    schemathesis = importlib.util.find_spec("schemathesis") is not None
    lines = [
        "## Soak: faults and hostile input (`benchmarks/soak.py`)",
        "",
        f"Machine: {machine()}.",
        f"`pytest -m soak tests/reliability` at scale {args.scale}: {seconds / 60:.1f} min;"
        f" pytest says: `{tail.splitlines()[-1] if tail else '?'}`."
        + ("" if schemathesis else " schemathesis is not installed: its soak was skipped."),
        "",
        "| run | figures | statuses |",
        "|---|---|---|",
        *rows,
        "",
        f"Totals: {totals.get('kills', 0)} SIGKILLs; {totals.get('acknowledged', 0):,} webhooks"
        f" acknowledged across the fault runs with {totals.get('problems', 0)} invariant problems"
        " (lost, stored twice, applied twice, unprocessed, audit); "
        f"{totals.get('fuzzed requests', 0):,} fuzzed requests with"
        f" {totals.get('5xx', 0)} 5xx answers.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        update_section("soak", text)
    return code


if __name__ == "__main__":
    sys.exit(main())
