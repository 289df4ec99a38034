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
secrets = ["whsec_first_test_secret", "whsec_second_test_secret"]
tolerance_seconds = 60
[providers.stripe_eu]
type = "stripe"
secrets = ["whsec_eu_account_secret"]
""",
    )
    settings = load_settings(path, environ={})
    assert settings.server.port == 9000
    assert settings.storage.path == str(tmp_path / "x.db")  # relative to the file's folder
    assert settings.providers["stripe"].secrets == (
        "whsec_first_test_secret",
        "whsec_second_test_secret",
    )
    assert settings.providers["stripe"].tolerance_seconds == 60
    assert settings.providers["stripe_eu"].provider_type == "stripe"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[server]\nport = 9000\n[providers.stripe]\nsecrets = ["whsec_first_test_secret"]\n',
    )
    settings = load_settings(
        path,
        environ={
            "PAYHOOK_SERVER_PORT": "9100",
            "PAYHOOK_STORAGE_PATH": "/tmp/other.db",
            "PAYHOOK_PROVIDERS_STRIPE_SECRETS": "whsec_new_rotated_secret,whsec_old_rotated_secret",
        },
    )
    assert settings.server.port == 9100
    assert settings.storage.path == "/tmp/other.db"
    assert settings.providers["stripe"].secrets == (
        "whsec_new_rotated_secret",
        "whsec_old_rotated_secret",
    )


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


# -- strict configuration: a typo or a weak value never silently weakens a check ------------


def test_a_misspelled_provider_option_is_refused_with_the_closest_valid_key(
    tmp_path: Path,
) -> None:
    text = '[providers.checkout]\nsecrets = ["cko_signature_key_0123456789"]\nauthorisation = "x"\n'
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text), environ={})
    assert str(caught.value) == (
        "providers.checkout.authorisation: unknown setting (did you mean 'authorization'?)"
    )


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_and_huge_numbers_are_refused(tmp_path: Path, value: str) -> None:
    text = f"[processing]\nvisibility_timeout_seconds = {value}\n"
    with pytest.raises(ConfigError, match=r"^processing\.visibility_timeout_seconds: got"):
        load_settings(_write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("   ", "got a blank secret"),
        ("", "expected a list of non-empty strings"),
        ("x", "got 1 bytes, expected at least 16"),
        ("whsec_short", "got 11 bytes, expected at least 16"),
        (" whsec_with_a_space_0123", "leading or trailing whitespace"),
    ],
)
def test_blank_short_or_padded_secrets_are_refused_without_showing_them(
    tmp_path: Path, secret: str, problem: str
) -> None:
    text = f'[providers.stripe]\nsecrets = ["{secret}"]\n'
    with pytest.raises(ConfigError, match=problem) as caught:
        load_settings(_write(tmp_path, text), environ={})
    if len(secret.strip()) > 3:
        assert secret.strip() not in str(caught.value)


def test_a_provider_whose_own_format_is_shorter_accepts_it() -> None:
    # Lemon Squeezy's dashboard takes signing secrets of 6 to 40 characters.
    settings = parse_settings({"providers": {"lemonsqueezy": {"secrets": ["s3cr3t"]}}})
    assert settings.providers["lemonsqueezy"].secrets == ("s3cr3t",)
    with pytest.raises(ConfigError, match="got 5 bytes, expected at least 6"):
        parse_settings({"providers": {"lemonsqueezy": {"secrets": ["s3cr3"]}}})


def test_an_error_from_an_environment_variable_names_the_variable(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    with pytest.raises(
        ConfigError, match=r"^PAYHOOK_SERVER_PORT: server\.port: got 'eighty', expected int"
    ):
        load_settings(path, environ={"PAYHOOK_SERVER_PORT": "eighty"})
    with pytest.raises(ConfigError, match=r"^PAYHOOK_PROCESSING_MAX_RECEIVES: .*got '0'"):
        load_settings(path, environ={"PAYHOOK_PROCESSING_MAX_RECEIVES": "0"})
    with pytest.raises(ConfigError, match=r"^PAYHOOK_SERVER_PROT: server\.prot: unknown setting"):
        load_settings(path, environ={"PAYHOOK_SERVER_PROT": "1"})
    with pytest.raises(ConfigError, match=r"^PAYHOOK_PROVIDERS_STRIPE_TOLERANCE_SECONDS"):
        load_settings(path, environ={"PAYHOOK_PROVIDERS_STRIPE_TOLERANCE_SECONDS": "5m"})


def test_a_bad_configuration_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from payhook.cli.main import main

    path = _write(tmp_path, "[processing]\nvisibility_timeout_seconds = nan\n")
    assert main(["webhooks", "list", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "processing.visibility_timeout_seconds: got nan" in err
    assert "Traceback" not in err
