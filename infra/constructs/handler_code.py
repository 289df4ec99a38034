"""The Lambda code asset: the runtime part of the ``payhook`` package and nothing else.

Everything under ``src/`` that is not listed in ``RUNTIME_PATHS`` is excluded, so a module added
later (a dev tool, a second server) stays out of the asset until someone decides it belongs.
The server, the CLI, the SQLite backend and the embedded runtime are never shipped.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_lambda as lambda_

SOURCE_ROOT = Path(__file__).resolve().parents[2] / "src"
RUNTIME_PATHS = (
    "payhook/__init__.py",
    "payhook/py.typed",
    "payhook/errors.py",
    "payhook/config.py",
    "payhook/logs.py",
    "payhook/options.py",
    "payhook/views.py",
    "payhook/core",
    "payhook/backfill",
    "payhook/providers",
    "payhook/service",
    "payhook/backends/__init__.py",
    "payhook/backends/aws",
    "payhook/runtimes/__init__.py",
    "payhook/runtimes/aws_lambda",
)
ALWAYS_EXCLUDED = ("__pycache__/", "*.pyc", ".DS_Store")


def _is_kept(relative: str) -> bool:
    return any(relative == kept or relative.startswith(kept + "/") for kept in RUNTIME_PATHS)


def _leads_to_kept(relative: str) -> bool:
    return any(kept.startswith(relative + "/") for kept in RUNTIME_PATHS)


def excluded_paths(root: Path = SOURCE_ROOT) -> list[str]:
    """Gitignore patterns, anchored at ``root``, for every entry outside the runtime package."""
    excluded: list[str] = []
    pending = [root]
    while pending:
        directory = pending.pop()
        for entry in sorted(directory.iterdir()):
            relative = entry.relative_to(root).as_posix()
            if _is_kept(relative):
                continue
            if entry.is_dir() and _leads_to_kept(relative):
                pending.append(entry)
            else:
                excluded.append("/" + relative)
    return sorted(excluded)


def runtime_code(root: Path = SOURCE_ROOT) -> lambda_.Code:
    """The asset shared by the three functions (one upload, three handlers)."""
    return lambda_.Code.from_asset(
        str(root),
        exclude=[*excluded_paths(root), *ALWAYS_EXCLUDED],
        ignore_mode=IgnoreMode.GIT,
    )
