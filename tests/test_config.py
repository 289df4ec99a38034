"""Configuration: one TOML file, environment overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from payhook.config import load_settings, parse_settings
from payhook.errors import ConfigError
from payhook.providers import build_providers

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "payhook.toml"
    path.write_text(text)
    return path


def test_shipped_demo_config_loads_and_builds_its_providers() -> None:
    settings = load_settings(ROOT / "payhook.toml", environ={})
    providers = build_providers(settings.providers)
    assert {"stripe", "standard"} <= set(providers)
    assert settings.server.body_limit_bytes == 1024 * 1024


def test_reads_sections_and_provider_options(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[server]
port = 9000
[storage]
path = "x.db"
[providers.stripe]
secrets = ["whsec_a", "whsec_b"]
tolerance_seconds = 60
[providers.stripe_eu]
type = "stripe"
secrets = ["whsec_eu"]
""",
    )
    settings = load_settings(path, environ={})
    assert settings.server.port == 9000
    assert settings.storage.path == "x.db"
    assert settings.providers["stripe"].secrets == ("whsec_a", "whsec_b")
    assert settings.providers["stripe"].tolerance_seconds == 60
    assert settings.providers["stripe_eu"].type == "stripe"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[server]\nport = 9000\n[providers.stripe]\nsecrets = ["whsec_a"]\n')
    settings = load_settings(
        path,
        environ={
            "PAYHOOK_SERVER_PORT": "9100",
            "PAYHOOK_STORAGE_PATH": "/tmp/other.db",
            "PAYHOOK_PROVIDERS_STRIPE_SECRETS": "whsec_new,whsec_old",
        },
    )
    assert settings.server.port == 9100
    assert settings.storage.path == "/tmp/other.db"
    assert settings.providers["stripe"].secrets == ("whsec_new", "whsec_old")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = 'abc'\n", "server.port"),
        ("[server]\nport = -1\n", "server.port"),
        ("[server]\nnope = 1\n", "server.nope: unknown setting"),
        ("[bogus]\n", "unknown section"),
        ("[providers.stripe]\nsecrets = [1]\n", "providers.stripe.secrets"),
        ("[providers.stripe]\nsecrets = ['a']\ntolerance_seconds = 0\n", "tolerance_seconds"),
        ("[server\n", "invalid TOML"),
    ],
)
def test_bad_configuration_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text), environ={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_unknown_provider_type_and_missing_secrets_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown provider type"):
        build_providers(parse_settings({"providers": {"x": {"type": "nope"}}}).providers)
    with pytest.raises(ConfigError, match="at least one secret"):
        build_providers(parse_settings({"providers": {"stripe": {}}}).providers)
