"""The app as synthesized: stack per suffix, and every template clean under cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.application import stack_name
from tests.infra.cfn import Synthesized

pytestmark = pytest.mark.infra

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
# Warnings accepted, with the reason. Nothing else may be reported.
ACCEPTED_WARNINGS = {
    # CDK makes each function DependsOn its role's default policy *and* the role; the role is
    # also referenced by GetAtt. Redundant, harmless, and not ours to change.
    "W3005",
}


def test_one_stack_per_environment_suffix(dev: Synthesized, production: Synthesized) -> None:
    assert dev.stack.stack_name == stack_name(dev.settings) == "Payhook-qa7"
    assert production.stack.stack_name == "Payhook-prod"
    assert production.stack.account == "123456789012"
    assert production.stack.region == "us-east-1"


def test_cfn_lint_finds_no_error_in_any_template(synthesized: Synthesized) -> None:
    result = subprocess.run(
        [str(CFN_LINT), "--format", "json", str(synthesized.template_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    rules = {f["Rule"]["Id"] for f in findings}
    errors = [f for f in findings if f["Level"] == "Error"]

    assert result.returncode in (0, 4), result.stderr  # 0 clean, 4 warnings only
    assert errors == []
    assert rules <= ACCEPTED_WARNINGS, findings
