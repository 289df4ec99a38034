"""Provider configuration from Secrets Manager, cached for a TTL.

The secret is ``{"providers": {"<name>": {<same keys as a [providers.<name>] section>}}}``.
Read with boto3 directly: the Powertools parameters utility costs ~280 ms of cold start.
When a refresh fails (Secrets Manager unavailable, or a malformed new version) the last good
providers keep serving until the next refresh, and the failure is logged as an error; with
nothing cached, the caller gets the error (a 503 or a ConfigError).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from payhook.backends.aws.errors import aws_call
from payhook.core.clock import Clock, system_clock
from payhook.errors import ConfigError, StorageUnavailableError
from payhook.providers import Provider, ProviderConfig, build_providers, load_provider_config

log = logging.getLogger("payhook.aws.secrets")

#: In every log line about a provider secret that cannot be used (the alarm counts it in the
#: receiver's log: infra/constructs/alarms.py).
UNUSABLE = "provider secret unusable"


def provider_configs(secret_string: str) -> dict[str, ProviderConfig]:
    """Parse the secret's JSON. Error messages name keys and types, never values."""
    try:
        data = json.loads(secret_string)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"providers secret: got invalid JSON (line {exc.lineno}, column {exc.colno}),"
            ' expected {"providers": {...}}'
        ) from None
    sections = data.get("providers") if isinstance(data, dict) else None
    if not isinstance(sections, dict) or not sections:
        if not isinstance(data, dict):
            got = f"a JSON {type(data).__name__}"
        elif "providers" not in data:
            got = "no 'providers' key"
        else:
            got = "an empty 'providers' object"
            if not isinstance(sections, dict):
                got = f"'providers' as a JSON {type(sections).__name__}"
        raise ConfigError(
            f"providers secret: got {got}, expected an object with a non-empty 'providers' object"
        )
    return {name: load_provider_config(name, section) for name, section in sections.items()}


class ProviderSecret:
    """The configured providers, rebuilt only when the secret's text changes."""

    def __init__(
        self,
        client: Any,
        secret_id: str,
        *,
        cache_seconds: int,
        clock: Clock = system_clock,
    ) -> None:
        self.client = client
        self.secret_id = secret_id
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._text: str | None = None
        self._providers: dict[str, Provider] = {}
        self._fetched_at = float("-inf")

    def providers(self) -> dict[str, Provider]:
        with self._lock:
            now = self.clock()
            if self._text is not None and now - self._fetched_at < self.cache_seconds:
                return self._providers
            try:
                text = self._fetch()
                if text != self._text:
                    self._providers = build_providers(provider_configs(text), self.clock)
                    self._text = text
            except (StorageUnavailableError, ConfigError) as exc:
                if self._text is None:
                    raise
                # Still serving, but the value an operator just loaded is broken: say so
                # now, not at the next cold start (when it turns into 503s).
                log.error(
                    f"{UNUSABLE}: refresh failed; serving the cached providers",
                    extra={"error": str(exc)},
                )
            self._fetched_at = now
            return self._providers

    def _fetch(self) -> str:
        with aws_call("reading the provider secret"):
            response = self.client.get_secret_value(SecretId=self.secret_id)
        text = response.get("SecretString")
        if not isinstance(text, str):
            raise ConfigError("providers secret: got a binary secret, expected a JSON string")
        return text
