"""``[audit] key``: the audit chain's key, from the file or PAYHOOK_AUDIT_KEY, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from payhook.config import load_settings, parse_settings
from payhook.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
KEY = "0123456789abcdef0123456789abcdef"


def test_the_demo_config_carries_a_key_long_enough() -> None:
    settings = load_settings(ROOT / "payhook.toml", environ={})
    assert settings.audit.key is not None
    assert len(settings.audit.key.encode()) >= 32
    assert "demo" in settings.audit.key  # published: it says so


def test_the_key_may_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "payhook.toml"
    config.write_text("[storage]\npath = 'x.db'\n")
    assert load_settings(config, environ={}).audit.key is None
    assert load_settings(config, environ={"PAYHOOK_AUDIT_KEY": KEY}).audit.key == KEY


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("k" * 31, "audit.key: got str, expected str of length >= 32"),
        (" " * 40, "audit.key: got str, expected str that is not blank"),
        (32, "audit.key: got int, expected str"),
    ],
)
def test_a_short_or_blank_key_is_refused_without_showing_it(key: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"audit": {"key": key}})
    assert str(caught.value) == message


def test_a_short_key_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "payhook.toml"
    config.write_text("")
    with pytest.raises(ConfigError, match=r"^PAYHOOK_AUDIT_KEY: audit\.key: got str, expected"):
        load_settings(config, environ={"PAYHOOK_AUDIT_KEY": "too-short"})
