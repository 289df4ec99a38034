"""A processing worker in its own process, made to crash at an exact point (fault tests).

    python -m tests.reliability.worker DB --die after-commit --signal-computed F --commit-after G

It receives every visible message (real ``SqliteQueue``) and processes each with the real
``Processor`` over a ``SqliteStore`` whose first commit can be held back until a file exists,
announce that its effects are computed, and kill the process with SIGKILL right after the
commit or inside it (just before COMMIT). Outcomes go to ``--report`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

from payhook.backends.sqlite import SqliteQueue, SqliteStore
from payhook.core.ports import ProcessingCommit
from payhook.service.process import Outcome, Processor
from tests.reliability import fleet


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.01)


class FaultyStore(SqliteStore):
    """The real store; its first commit is staged by the arguments."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        super().__init__(path)
        self.args = args
        self.commits = 0

    def commit(self, commit: ProcessingCommit) -> bool:
        self.commits += 1
        if self.commits > 1:
            return super().commit(commit)
        if self.args.signal_computed:
            Path(self.args.signal_computed).touch()
        if self.args.commit_after:
            _wait_for(Path(self.args.commit_after))
        if self.args.die == "inside-commit":
            # The last statement of the commit transaction: die with it open, uncommitted.
            def trace(statement: str) -> None:
                if statement.startswith("DELETE FROM queue"):
                    os.kill(os.getpid(), signal.SIGKILL)

            self.conn.set_trace_callback(trace)
        done = super().commit(commit)
        if self.args.die == "after-commit":
            os.kill(os.getpid(), signal.SIGKILL)  # before the worker's own bookkeeping
        return done


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument(
        "--die", choices=["never", "after-commit", "inside-commit"], default="never"
    )
    parser.add_argument("--signal-computed", help="touch this file when the effects are computed")
    parser.add_argument("--commit-after", help="hold the first commit until this file exists")
    parser.add_argument("--received", help="touch this file once the messages are received")
    parser.add_argument("--visibility", type=float, default=1.0)
    parser.add_argument("--report", help="write outcomes here as JSON")
    args = parser.parse_args()

    providers = fleet.build(fleet.sections(fleet.available(), fleet.LOAD_TOLERANCE_SECONDS))
    queue = SqliteQueue(args.db, visibility_timeout=args.visibility, max_receives=10)
    store = FaultyStore(args.db, args)
    processor = Processor(providers, store)
    messages = queue.receive(1000)
    if args.received:
        Path(args.received).touch()
    outcomes = []
    for message in messages:
        result = processor.process(message.webhook_id)
        if result.outcome is not Outcome.PROCESSED:
            queue.delete(message.message_id)
        outcomes.append([message.webhook_id, message.receive_count, str(result.outcome)])
    if args.report:
        Path(args.report).write_text(json.dumps(outcomes))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except sqlite3.Error as exc:  # pragma: no cover - shown to the test through stderr
        raise SystemExit(f"worker failed: {exc}") from exc
