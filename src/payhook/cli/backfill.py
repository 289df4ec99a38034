"""``payhook backfill PROVIDER``: fetch the provider's events from its API and store those
never received as webhooks (each is named: a missed webhook)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from payhook.backends.sqlite import GroupCommitWriter, initialize
from payhook.backends.sqlite.cursors import SqliteCursors
from payhook.backfill.clients import events_api
from payhook.cli import render
from payhook.cli.database import for_writing
from payhook.cli.options import moment
from payhook.config import Settings
from payhook.errors import UnknownProviderError
from payhook.providers import build_providers
from payhook.service.backfill import Backfill

DEFAULT_SINCE = "24h"


def register(
    sub: Any, reads: list[argparse.ArgumentParser], writes: list[argparse.ArgumentParser]
) -> None:
    backfill = sub.add_parser(
        "backfill",
        parents=reads,  # --config and --json
        help="fetch a provider's events from its API; store (and name) the ones never received",
    )
    backfill.add_argument("provider", help="a configured provider with api_key (or client id)")
    backfill.add_argument(
        "--since",
        type=_since,
        default=DEFAULT_SINCE,
        metavar="DURATION",
        help=f"how far back: 30m, 24h, 7d or an ISO 8601 time (default {DEFAULT_SINCE})",
    )
    backfill.set_defaults(run=run_backfill)


def _since(text: str) -> float:
    when = moment(text)
    if when > time.time():
        raise argparse.ArgumentTypeError(f"got {text!r}, expected a time in the past")
    return when


def run_backfill(settings: Settings, args: argparse.Namespace) -> int:
    name = args.provider
    config = settings.providers.get(name)
    if config is None:
        known = ", ".join(sorted(settings.providers)) or "none"
        raise UnknownProviderError(
            f"no provider named {name!r} is configured (configured: {known})"
        )
    since: float = args.since  # argparse applies _since to the default too
    api = events_api(config)  # before touching the database: no API, nothing to write
    try:
        path = for_writing(settings)
        initialize(path)
        writer = GroupCommitWriter(path)
        writer.start()
        cursors = SqliteCursors(path, writer=writer)
        try:
            backfill = Backfill(build_providers({name: config}), writer, cursors)
            result = backfill.run(name, api, since)
        finally:
            cursors.close()
            writer.stop()
    finally:
        api.close()
    if args.json:
        render.emit_json(result.to_json())
        return 0
    render.fields(
        [
            ("provider", name),
            ("since", render.when(since)),
            ("fetched", result.fetched),
            ("new", f"{result.new} (never received as webhooks)"),
            ("already stored", result.duplicates),
            *([("skipped (unusable)", result.skipped)] if result.skipped else []),
        ]
    )
    for event_id in result.new_event_ids:
        print(f"missed: {event_id}")
    return 0
