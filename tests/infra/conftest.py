"""Synthesize the payhook stack once per session per configuration, cdk-nag packs included.

``dev`` is environment-agnostic (what ``cdk synth`` produces without credentials) with a
distinctive suffix and every optional feature off; ``production`` has a production-like
suffix, a concrete environment and non-default settings (a custom domain, the account's API
Gateway logging role), to show that they reach the template. Bundling is skipped (no pip, no
Docker): the layer asset is then staged from its source directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# jsii warns about Node 20 on every start; the toolchain is pinned, the warning is noise.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

if TYPE_CHECKING:
    from tests.infra.cfn import Synthesized

DEV_SUFFIX = "qa7"
PRODUCTION_SUFFIX = "prod"
PRODUCTION_OVERRIDES = {"api_throttle_rate_per_second": 50, "api_throttle_burst": 80}
PRODUCTION_DOMAIN = "webhooks.example.com"
PRODUCTION_CERTIFICATE = (
    "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
)
PRODUCTION_CONTEXT = {
    "reservedConcurrency": "20",
    "alertEmail": "payments-oncall@example.com",
    "domainName": PRODUCTION_DOMAIN,
    "certificateArn": PRODUCTION_CERTIFICATE,
    "apiGatewayCloudWatchRole": "true",  # as `-c apiGatewayCloudWatchRole=true` passes it
}


def _synthesize(outdir: Path, context: dict[str, Any], **build_kwargs: Any) -> Synthesized:
    import json

    from aws_cdk import App

    from infra import build
    from infra.application import project_context
    from tests.infra.cfn import Synthesized

    # The feature flags of cdk.json, as the CLI would pass them; bundling skipped.
    app = App(
        outdir=str(outdir),
        context={**project_context(), "aws:cdk:bundling-stacks": [], **context},
    )
    stack = build(app, **build_kwargs)
    error: Exception | None = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings and validation errors surface here
        error = exc
    template = json.loads((outdir / stack.template_file).read_text())
    return Synthesized(stack.service.settings, stack, outdir, template, error)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return _synthesize(tmp_path_factory.mktemp("cdk-dev"), {"environmentSuffix": DEV_SUFFIX})


@pytest.fixture(scope="session")
def production(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from aws_cdk import Environment

    return _synthesize(
        tmp_path_factory.mktemp("cdk-production"),
        {"environmentSuffix": PRODUCTION_SUFFIX, **PRODUCTION_CONTEXT},
        env=Environment(account="123456789012", region="us-east-1"),
        **PRODUCTION_OVERRIDES,
    )


@pytest.fixture(scope="session", params=["dev", "production"])
def synthesized(request: pytest.FixtureRequest) -> Synthesized:
    """Both configurations, for facts that must hold in every deployment."""
    result: Synthesized = request.getfixturevalue(request.param)
    return result
