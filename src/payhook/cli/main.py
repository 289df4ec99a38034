"""``payhook``: receive payment webhooks, and operate what they stored.

Every command addresses the one database its configuration names (``--config PATH``, before
or after the command; default ``$PAYHOOK_CONFIG``, else ``./payhook.toml``; a relative
``storage.path`` is relative to the configuration file). Read commands open it read-only and
never create it; commands that write say which database they write.

Exit status: 0 success; 1 what was asked about is missing, or a check failed; 2 bad usage,
configuration or environment (a port in use, a database in use, an unreadable file).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import payhook
from payhook.cli import audit, backfill, operate, payments, recovery, render, send, webhooks
from payhook.cli.options import common, json_flag
from payhook.config import load_settings
from payhook.errors import NotFoundError, PayhookError

COMMANDS = (operate, send, webhooks, payments, recovery, audit, backfill)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="payhook", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    top.add_argument("--config", metavar="PATH", default=None, help=argparse.SUPPRESS)
    top.add_argument("--version", action="version", version=f"payhook {payhook.__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reads, writes = [common(), json_flag()], [common()]
    for module in COMMANDS:
        module.register(sub, reads, writes)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.config)
        code: int = args.run(settings, args)
        return code
    except NotFoundError as exc:
        render.error(str(exc))
        return 1
    except PayhookError as exc:
        render.error(str(exc))
        return 2
    except BrokenPipeError:  # `payhook webhooks list | head`: the reader went away
        return 0


if __name__ == "__main__":
    sys.exit(main())
