"""Running and keeping the database: ``serve``, ``migrate``, ``backup``, ``purge`` and
``config check``."""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec

from payhook.backends.sqlite.reader import open_read_only
from payhook.backends.sqlite.retention import purge_payloads
from payhook.backends.sqlite.schema import initialize
from payhook.cli import render
from payhook.cli.database import for_writing
from payhook.config import Settings
from payhook.errors import PayhookError
from payhook.options import SECRET_KEYS


def register(
    sub: Any, reads: list[argparse.ArgumentParser], writes: list[argparse.ArgumentParser]
) -> None:
    serve = sub.add_parser("serve", parents=writes, help="run the HTTP server and workers")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=run_server)
    sub.add_parser(
        "migrate", parents=writes, help="create the database, or bring it to this schema"
    ).set_defaults(run=migrate)
    backup = sub.add_parser(
        "backup", parents=writes, help="a consistent copy, taken while the server runs"
    )
    backup.add_argument("target", help="a new file (never overwritten)")
    backup.set_defaults(run=back_up)
    purging = sub.add_parser(
        "purge",
        parents=writes,
        help="remove the payloads of processed webhooks older than storage.retention_days",
    )
    purging.add_argument("--dry-run", action="store_true", help="count, change nothing")
    purging.set_defaults(run=purge)
    config = sub.add_parser("config", help="the configuration: check").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    config.add_parser(
        "check", parents=reads, help="validate it and print it, secrets masked"
    ).set_defaults(run=check_config)


def run_server(settings: Settings, args: argparse.Namespace) -> int:
    from payhook.server.run import serve  # the server's packages load only for serve

    return serve(settings, host=args.host, port=args.port)


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    version = initialize(settings.storage.path)
    print(f"{Path(settings.storage.path).resolve()}: schema version {version}")
    return 0


def back_up(settings: Settings, args: argparse.Namespace) -> int:
    """SQLite's online backup: a consistent copy even while the server writes. The copy is a
    plain rollback-journal database, 0600, readable on its own (no WAL beside it)."""
    target = Path(args.target)
    if target.exists():
        raise PayhookError(f"{target} exists: choose a new file (backups never overwrite)")
    source = open_read_only(for_writing(settings))
    partial = target.with_name(f".{target.name}.partial")
    started = time.monotonic()
    try:
        fd = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
        partial.rename(target)
    except (OSError, sqlite3.Error) as exc:
        partial.unlink(missing_ok=True)
        raise PayhookError(f"backup to {target} failed: {exc}") from exc
    finally:
        source.close()
    size = target.stat().st_size
    print(f"backed up to {target} ({size:,} bytes in {time.monotonic() - started:.1f} s)")
    return 0


def purge(settings: Settings, args: argparse.Namespace) -> int:
    days = settings.storage.retention_days
    report = purge_payloads(
        for_writing(settings), older_than=time.time() - days * 86400, dry_run=args.dry_run
    )
    verb = "would purge" if args.dry_run else "purged"
    print(
        f"{verb} the payloads of {report.webhooks:,} processed webhooks older than {days} days"
        f" ({report.payload_bytes:,} bytes); their rows, digests and dedup keys stay"
    )
    return 0


def check_config(settings: Settings, args: argparse.Namespace) -> int:
    effective = {
        name: _masked(msgspec.to_builtins(getattr(settings, name)))
        for name in ("server", "storage", "processing", "outbox", "audit", "logging", "admin")
        if hasattr(settings, name)
    }
    effective["providers"] = {
        name: _masked(
            {
                "type": cfg.provider_type,
                "secrets": list(cfg.secrets),
                "tolerance_seconds": cfg.tolerance_seconds,
                **cfg.options,
            }
        )
        for name, cfg in settings.providers.items()
    }
    if args.json:
        render.emit_json({"source": settings.source, "config": effective})
        return 0
    print(f"# {settings.source}: valid")
    for section, values in effective.items():
        if section == "providers":
            for name, provider in values.items():
                print(f"\n[providers.{name}]")
                for key, value in provider.items():
                    print(f"{key} = {value!r}")
            continue
        print(f"\n[{section}]")
        for key, value in values.items():
            print(f"{key} = {value!r}")
    return 0


def _masked(values: Any) -> Any:
    if not isinstance(values, dict):
        return values
    out = {}
    for key, value in values.items():
        if key in SECRET_KEYS and value is not None:
            items = value if isinstance(value, list) else [value]
            hidden = [f"*** ({len(str(v))} characters)" for v in items]
            out[key] = hidden if isinstance(value, list) else hidden[0]
        else:
            out[key] = value
    return out
