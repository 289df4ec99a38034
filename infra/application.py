"""Build the CDK app: one ``PayhookStack`` per environment suffix, checked by cdk-nag."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment

from infra.config import PayhookSettings
from infra.nag import register_checks
from infra.stack import PayhookStack

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def project_context(cdk_json: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` of cdk.json: defaults and the CDK feature flags this app is built with.

    The CDK CLI passes it to the app itself; ``python app.py`` and the tests pass it to
    ``App(context=...)``, so every synth uses the same flags. CLI context still wins.
    """
    context: dict[str, Any] = json.loads(cdk_json.read_text())["context"]
    return context


def stack_name(settings: PayhookSettings) -> str:
    return f"Payhook-{settings.environment_suffix}"


def environment_from_os() -> Environment | None:
    """The account and region the CDK CLI resolved from the caller's credentials, if any."""
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    if account and region:
        return Environment(account=account, region=region)
    return None  # environment-agnostic template


def build(app: App, *, env: Environment | None = None, **overrides: Any) -> PayhookStack:
    """Add the stack configured by context (and ``overrides``) to ``app``."""
    settings = PayhookSettings.from_context(app.node.try_get_context, **overrides)
    stack = PayhookStack(app, stack_name(settings), settings=settings, env=env)
    register_checks(app)
    return stack
