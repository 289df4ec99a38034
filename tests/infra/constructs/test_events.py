"""The canonical event bus."""

from __future__ import annotations

import pytest

from tests.infra.cfn import Synthesized, render

pytestmark = pytest.mark.infra


def test_event_bus_is_named_and_encrypted_with_the_payhook_key(synthesized: Synthesized) -> None:
    key_id, _ = synthesized.data_key()
    _, bus = synthesized.only("AWS::Events::EventBus")

    assert bus["Properties"]["Name"] == f"payhook-events-{synthesized.suffix}"
    assert render(bus["Properties"]["KmsKeyIdentifier"]) == f"${{{key_id}.Arn}}"
