"""The backend's menu, and what each handler module loads at cold start."""

from __future__ import annotations

import subprocess
import sys

import pytest

import payhook.backends.aws as aws_backend
from payhook.backends.aws.audit import DynamoAuditLog

pytestmark = pytest.mark.aws


def test_menu_resolves_every_listed_name_and_nothing_else() -> None:
    assert aws_backend.__all__ == sorted(aws_backend.__all__)
    for name in aws_backend.__all__:
        assert getattr(aws_backend, name).__name__ == name
    assert aws_backend.DynamoAuditLog is DynamoAuditLog
    with pytest.raises(AttributeError):
        _ = aws_backend.Nothing


@pytest.mark.parametrize(
    ("handler", "not_loaded"),
    [
        (
            "receiver",
            {
                "payhook.backends.aws.audit",
                "payhook.backends.aws.payments",
                "payhook.service.process",
            },
        ),
        ("processor", {"payhook.backends.aws.audit", "payhook.backends.aws.webhooks"}),
        ("audit", {"payhook.backends.aws.webhooks", "payhook.providers", "payhook.service.ingest"}),
        (
            "sweeper",
            {
                "payhook.backends.aws.audit",
                "payhook.backends.aws.payments",
                "payhook.backends.aws.secrets",
                "payhook.providers",
                "payhook.service.process",
            },
        ),
    ],
)
def test_a_handler_module_loads_only_what_it_needs(handler: str, not_loaded: set[str]) -> None:
    code = (
        "import sys, json\n"
        f"import payhook.runtimes.aws_lambda.{handler}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('payhook', 'aws_')))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split('"')[1::2])
    assert f"payhook.runtimes.aws_lambda.{handler}" in loaded
    assert loaded.isdisjoint(not_loaded)
    assert "aws_lambda_powertools" not in loaded
