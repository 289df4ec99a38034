"""Arguments shared by the commands: durations and times, and the shared flags."""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime

_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def moment(text: str) -> float:
    """``24h``, ``30m``, ``7d``, ``90s`` (that long ago) or an ISO 8601 time (UTC if naive)."""
    match = _DURATION.match(text.strip())
    if match:
        return time.time() - int(match[1]) * _SECONDS[match[2]]
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected a duration (30m, 24h, 7d) or an ISO 8601 time"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1 or int(text) > 10_000:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected a whole number from 1 to 10000")
    return int(text)


def common() -> argparse.ArgumentParser:
    """``--config`` after the command as well as before it (the later one wins)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,  # never overwrite a --config given before the command
        help="TOML config (default: $PAYHOOK_CONFIG, else ./payhook.toml)",
    )
    return parent


def json_flag() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parent
