"""The API options of a provider section: checked like secrets, masked by ``config check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from payhook.cli.main import main
from payhook.config import parse_settings
from payhook.errors import ConfigError

API_KEY = "sk_live_this_must_never_be_printed"
CLIENT_SECRET = "paypal_client_secret_never_printed"


def test_config_check_masks_api_keys_and_client_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "payhook.toml"
    path.write_text(
        f'[storage]\npath = "{tmp_path / "db"}"\n'
        "[providers.stripe]\n"
        'secrets = ["whsec_options_tests_secret"]\n'
        f'api_key = "{API_KEY}"\n'
        "[providers.paypal]\n"
        'webhook_id = "8PT597110X687430LM"\n'
        'client_id = "paypal-client-id-0000001"\n'
        f'client_secret = "{CLIENT_SECRET}"\n'
    )
    assert main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert API_KEY not in out
    assert CLIENT_SECRET not in out
    assert f"*** ({len(API_KEY)} characters)" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api_key": "short"}, "providers.stripe.api_key: got str, expected"),
        ({"api_key": "sk_test with a space in it"}, "providers.stripe.api_key: got str"),
        ({"api_base": "ftp://api.stripe.com"}, "providers.stripe.api_base: got 'ftp://"),
        ({"api_token": "sk_test_0123456789abcdef"}, "did you mean 'api_key'"),
    ],
)
def test_api_options_are_checked_without_showing_secrets(
    options: dict[str, str], message: str
) -> None:
    section = {"secrets": ["whsec_options_tests_secret"], **options}
    with pytest.raises(ConfigError, match=r"providers\.stripe") as raised:
        parse_settings({"providers": {"stripe": section}})
    assert message in str(raised.value)
    assert "sk_test" not in str(raised.value)


def test_every_provider_type_is_either_read_or_named_as_not_covered() -> None:
    from payhook.backfill.clients import IMPLEMENTED, WITHOUT_EVENTS_API
    from payhook.providers import PROVIDER_TYPES

    assert set(IMPLEMENTED) | set(WITHOUT_EVENTS_API) == set(PROVIDER_TYPES)
    assert not set(IMPLEMENTED) & set(WITHOUT_EVENTS_API)


def test_backfill_of_a_provider_without_an_events_api_says_so() -> None:
    from payhook.backfill.clients import events_api
    from payhook.backfill.errors import NoEventsApiError
    from payhook.providers import ProviderConfig

    config = ProviderConfig.from_mapping("adyen", {"secrets": ["44782DEF547AAA06C910C4"]})
    with pytest.raises(NoEventsApiError, match="adyen: provider type 'adyen' has no events API"):
        events_api(config)
