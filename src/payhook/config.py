"""Configuration: one TOML file, environment variables may override.

Provider sections have the same shape whether they come from ``[providers.<name>]`` here or
from the JSON object the AWS runtime reads from Secrets Manager.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payhook.errors import ConfigError
from payhook.providers.base import ProviderConfig

DEFAULT_CONFIG_PATH = "payhook.toml"
ENV_PREFIX = "PAYHOOK_"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    body_limit_bytes: int = 1024 * 1024
    workers: int = 2


@dataclass(frozen=True, slots=True)
class StorageSettings:
    path: str = "var/payhook.db"
    checkpoint_interval_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class ProcessingSettings:
    visibility_timeout_seconds: float = 30.0
    max_receives: int = 5
    batch_size: int = 25
    poll_interval_seconds: float = 0.05
    retry_base_seconds: float = 1.0
    # While webhooks are arriving, workers let the acknowledgment path go first, as long as
    # the oldest queued message is younger than this; past it they process at full speed.
    max_lag_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    forward_url: str | None = None
    secret: str | None = None
    max_attempts: int = 10


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    source: str = "<defaults>"


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "storage": StorageSettings,
    "processing": ProcessingSettings,
    "outbox": OutboxSettings,
}


# server.workers = 0 runs a receive-only node: webhooks are stored and queued, not processed.
_ZERO_ALLOWED = {"server.workers"}


def _coerce(where: str, value: Any, default: Any) -> Any:
    expected = type(default) if default is not None else str
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and expected in (int, float):
        try:
            return expected(value)
        except ValueError:
            raise ConfigError(f"{where}: got {value!r}, expected {expected.__name__}") from None
    if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
        raise ConfigError(f"{where}: got {type(value).__name__}, expected {expected.__name__}")
    if expected in (int, float) and isinstance(value, (int, float)):
        if where in _ZERO_ALLOWED and value == 0:
            return value
        if value <= 0:
            raise ConfigError(f"{where}: got {value!r}, expected a positive number")
    return value


def _section(name: str, raw: Mapping[str, Any]) -> Any:
    cls = _SECTIONS[name]
    defaults = cls()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if not hasattr(defaults, key):
            raise ConfigError(f"{name}.{key}: unknown setting")
        values[key] = _coerce(f"{name}.{key}", value, getattr(defaults, key))
    return cls(**values)


def parse_settings(data: Mapping[str, Any], source: str = "<mapping>") -> Settings:
    unknown = set(data) - {*_SECTIONS, "providers"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s): {', '.join(sorted(unknown))}")
    sections = {name: _section(name, data.get(name, {})) for name in _SECTIONS}
    providers_raw = data.get("providers", {})
    if not isinstance(providers_raw, Mapping):
        raise ConfigError("providers: expected a table of provider sections")
    providers = {
        name: ProviderConfig.from_mapping(name, dict(section))
        for name, section in providers_raw.items()
    }
    return Settings(**sections, providers=providers, source=source)


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``PAYHOOK_SERVER_PORT=9000``, ``PAYHOOK_STORAGE_PATH=...``,
    ``PAYHOOK_PROVIDERS_STRIPE_SECRETS=whsec_a,whsec_b``."""
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "PAYHOOK_CONFIG":
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("_", 1)
        if len(parts) != 2:
            continue
        section, rest = parts
        if section in _SECTIONS:
            data.setdefault(section, {})[rest] = value
        elif section == "providers":
            for option in ("secrets", "tolerance_seconds"):
                if rest.endswith("_" + option):
                    name = rest[: -len(option) - 1]
                    provider = data.setdefault("providers", {}).setdefault(name, {})
                    provider[option] = value.split(",") if option == "secrets" else int(value)
    return data


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (``--config``, else ``$PAYHOOK_CONFIG``, else ``./payhook.toml``)."""
    environ = os.environ if environ is None else environ
    config_path = Path(path or environ.get("PAYHOOK_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        with config_path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {config_path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: invalid TOML: {exc}") from exc
    return parse_settings(_apply_env(data, environ), source=str(config_path))
