"""Reading synthesized CloudFormation templates in tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from infra.config import PayhookSettings
from infra.stack import PayhookStack


def render(value: Any) -> Any:
    """Intrinsics as readable strings: ``{"Ref": "AWS::Region"}`` -> ``"${AWS::Region}"``.

    Lets a test compare an ARN or a service principal whatever the stack's environment.
    """
    if isinstance(value, list):
        return [render(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return "${" + value["Ref"] + "}"
    if set(value) == {"Fn::GetAtt"}:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(str(render(part)) for part in parts)
    return {key: render(item) for key, item in value.items()}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass
class Synthesized:
    """One synthesized stack: its template, cloud assembly directory and synth outcome."""

    settings: PayhookSettings
    stack: PayhookStack
    outdir: Path
    template: dict[str, Any]
    error: Exception | None
    _assertions: Template | None = field(default=None, repr=False)

    @property
    def assertions(self) -> Template:
        if self._assertions is None:
            self._assertions = Template.from_json(self.template)
        return self._assertions

    @property
    def template_path(self) -> Path:
        return self.outdir / self.stack.template_file

    @property
    def suffix(self) -> str:
        return self.settings.environment_suffix

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == resource_type
        }

    def only(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.resources(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    def data_key(self) -> tuple[str, dict[str, Any]]:
        """The customer-managed key of data, queues, logs and secrets (not the audit MAC key)."""
        logical_id = self.logical_id(self.stack.service.encryption.key)
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return logical_id, resource

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.resolve(self.stack.get_logical_id(construct.node.default_child)))

    def properties(self, construct: Any) -> dict[str, Any]:
        props: dict[str, Any] = self.template["Resources"][self.logical_id(construct)]["Properties"]
        return props

    def policy_statements(self, role: Any) -> list[dict[str, Any]]:
        """The statements of every IAM policy attached to ``role``, rendered."""
        role_id = self.logical_id(role)
        statements: list[dict[str, Any]] = []
        for policy in self.resources("AWS::IAM::Policy").values():
            roles = [render(r) for r in policy["Properties"].get("Roles", [])]
            if "${" + role_id + "}" in roles:
                statements.extend(render(policy["Properties"]["PolicyDocument"]["Statement"]))
        return statements

    def handler_asset(self) -> Path:
        """The staged code asset the functions share."""
        keys = {
            f["Properties"]["Code"]["S3Key"]
            for f in self.resources("AWS::Lambda::Function").values()
        }
        assert len(keys) == 1, "the functions share one code asset"
        asset = self.outdir / f"asset.{keys.pop().removesuffix('.zip')}"
        assert asset.is_dir()
        return asset

    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report

    def acknowledgments(self) -> dict[tuple[str, str], str]:
        """(construct path, acknowledged id) -> reason, from the assembly metadata."""
        metadata = json.loads((self.outdir / f"{self.stack.artifact_id}.metadata.json").read_text())
        found: dict[tuple[str, str], str] = {}
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    for finding, reason in entry["data"].items():
                        found[(path.lstrip("/"), finding)] = reason
        return found


def allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """Whether an Allow statement grants exactly ``action`` on ``resource`` (both rendered)."""
    return any(
        statement["Effect"] == "Allow"
        and action in as_list(statement["Action"])
        and resource in as_list(statement["Resource"])
        for statement in statements
    )
