"""The dependencies layer (cryptography, msgspec), built without Docker.

CDK asks ``PipLayerBundling`` first; it runs pip on this machine for the Lambda platform
(manylinux2014 aarch64, CPython of the function runtime, binary wheels only) into
``python/``, where Lambda puts layer packages on ``sys.path``. Docker is only the fallback
CDK requires a bundling image for; it is never used when pip succeeds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import PayhookSettings

LAYER_SOURCE = Path(__file__).resolve().parents[1] / "layer"
REQUIREMENTS = LAYER_SOURCE / "requirements.txt"
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
PIP_PLATFORM = "manylinux2014_aarch64"


def pip_command(output_dir: str, requirements: Path = REQUIREMENTS) -> list[str]:
    """The pip invocation that installs Lambda-compatible wheels into ``output_dir/python``."""
    python_version = RUNTIME.name.removeprefix("python")
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # the host interpreter would write .pyc files for its own version
        "--target",
        str(Path(output_dir) / "python"),
        "--platform",
        PIP_PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--requirement",
        str(requirements),
    ]


@jsii.implements(ILocalBundling)
class PipLayerBundling:
    """Local bundling: pip on the host instead of a Docker container."""

    def __init__(self, requirements: Path = REQUIREMENTS) -> None:
        self._requirements = requirements

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        result = subprocess.run(
            pip_command(output_dir, self._requirements),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            # Raise instead of returning False: the Docker fallback is not available here and
            # would hide pip's message behind a Docker error.
            raise RuntimeError(f"pip could not build the Lambda layer:\n{result.stderr}")
        return True


class DependenciesLayer(Construct):
    """A layer with the third-party packages the handlers import."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: PayhookSettings) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            layer_version_name=settings.name("dependencies"),
            description="payhook runtime dependencies (infra/layer/requirements.txt)",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            removal_policy=settings.removal_policy,
            code=lambda_.Code.from_asset(
                str(LAYER_SOURCE),
                # Hash the requirements, not pip's output: repeated synths reuse the build.
                asset_hash_type=AssetHashType.SOURCE,
                bundling=BundlingOptions(
                    image=RUNTIME.bundling_image,
                    command=[
                        "bash",
                        "-c",
                        "pip install --no-compile -r requirements.txt -t /asset-output/python",
                    ],
                    local=PipLayerBundling(),
                ),
            ),
        )
