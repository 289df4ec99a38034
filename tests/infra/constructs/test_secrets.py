"""The provider secret: encrypted, with a placeholder payhook itself accepts."""

from __future__ import annotations

import json

import pytest

from payhook.config import parse_settings
from tests.infra.cfn import Synthesized, render

pytestmark = pytest.mark.infra


def test_secret_is_key_encrypted_and_suffixed(synthesized: Synthesized) -> None:
    key_id, _ = synthesized.data_key()
    _, secret = synthesized.only("AWS::SecretsManager::Secret")

    assert render(secret["Properties"]["KmsKeyId"]) == f"${{{key_id}.Arn}}"
    assert secret["Properties"]["Name"] == f"payhook-providers-{synthesized.suffix}"


def test_placeholder_is_an_empty_provider_configuration(synthesized: Synthesized) -> None:
    # Same shape as the [providers.<name>] TOML sections; payhook's own parser accepts it.
    _, secret = synthesized.only("AWS::SecretsManager::Secret")
    value = json.loads(secret["Properties"]["SecretString"])

    assert value == {"providers": {}}
    assert parse_settings(value).providers == {}


def test_documented_secret_shape_parses_into_provider_configs() -> None:
    value = {
        "providers": {
            "stripe": {
                "secrets": ["whsec_new_rotated_secret", "whsec_old_rotated_secret"],
                "tolerance_seconds": 300,
            },
            "shop": {"type": "shopify", "secrets": ["shpss_0123456789abcdef"]},
        }
    }

    providers = parse_settings(value).providers

    assert providers["stripe"].secrets == ("whsec_new_rotated_secret", "whsec_old_rotated_secret")
    assert providers["shop"].provider_type == "shopify"
