"""Configuration: one TOML file, environment variables may override.

Every section is a ``msgspec`` struct: an unknown key, a value of the wrong type, a non-finite
or out-of-range number is a ``ConfigError`` naming the key (and, for an unknown key, the
closest valid one). Provider sections have the same shape whether they come from
``[providers.<name>]`` here or from the JSON object the AWS runtime reads from Secrets Manager.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from payhook.core.chain_key import MIN_KEY_BYTES
from payhook.errors import ConfigError
from payhook.options import NOT_BLANK, Options, convert, unknown_key_error
from payhook.providers import ProviderConfig, load_provider_config

DEFAULT_CONFIG_PATH = "payhook.toml"
ENV_PREFIX = "PAYHOOK_"

Seconds = Annotated[float, Meta(gt=0, le=86_400)]
Port = Annotated[int, Meta(ge=0, le=65_535)]  # 0: any free port (tests)


class ServerSettings(Options, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    body_limit_bytes: Annotated[int, Meta(ge=1, le=64 * 1024 * 1024)] = 1024 * 1024
    #: Processing worker threads (with ``processing.separate_process = false``); 0 runs a
    #: receive-only node (stored and queued, not processed).
    workers: Annotated[int, Meta(ge=0, le=64)] = 2
    #: The request line and headers together; larger is answered 431 and the connection closed.
    max_header_bytes: Annotated[int, Meta(ge=1024, le=1024 * 1024)] = 64 * 1024
    #: From connecting (or the first byte of a request) to its last header byte (slowloris).
    head_timeout_seconds: Seconds = 10.0
    #: From the last header byte to the last body byte.
    body_timeout_seconds: Seconds = 30.0
    #: An idle keep-alive connection is closed after this.
    keepalive_timeout_seconds: Seconds = 5.0
    #: Open connections at most; beyond, new ones are closed at once. 0: derived from the
    #: file-descriptor limit, which ``serve`` raises to the hard limit.
    max_connections: Annotated[int, Meta(ge=0, le=1_000_000)] = 0


class StorageSettings(Options, frozen=True):
    #: Relative to the configuration file's folder.
    path: str = "var/payhook.db"
    #: How often the writer checkpoints the WAL between groups: the WAL stays near this much
    #: writing (about 70 MB per second at full load), each checkpoint holds the writer ~20-35 ms.
    checkpoint_interval_seconds: Seconds = 1.0
    #: Raw payloads of processed webhooks older than this are removed (their rows, digests
    #: and dedup keys stay, so a late redelivery is still a duplicate); 0 keeps them forever.
    retention_days: Annotated[int, Meta(ge=0, le=36_500)] = 30


class ProcessingSettings(Options, frozen=True):
    visibility_timeout_seconds: Seconds = 30.0
    max_receives: Annotated[int, Meta(ge=1, le=1000)] = 5
    #: Messages a worker takes per batch: one read of their webhooks, one of their payments
    #: and ONE write for all of them (the writer carries one background write per group).
    batch_size: Annotated[int, Meta(ge=1, le=1000)] = 100
    #: Workers and the audit go back to back while full batches wait; once caught up they
    #: look again this often (the most a webhook then waits before it is picked up).
    poll_interval_seconds: Annotated[float, Meta(gt=0, le=60)] = 0.01
    retry_base_seconds: Seconds = 1.0
    #: Process and audit in a process of their own, in one thread (the default), instead of
    #: in ``server.workers`` threads beside the server: about a third more webhooks/s end to
    #: end on 2 cores, and half the p99 (``runtimes/processing.py``). ``server.workers`` then
    #: only says whether anything is processed (0: a receive-only node, no process).
    separate_process: bool = True


class OutboxSettings(Options, frozen=True):
    forward_url: str | None = None
    secret: str | None = None
    max_attempts: Annotated[int, Meta(ge=1, le=1000)] = 10


class AdminSettings(Options, frozen=True):
    """The admin listener: /metrics, /status, /healthz and the console, never the providers'."""

    host: str = "127.0.0.1"
    port: Port = 8081
    #: Required whenever ``host`` is not a loopback address (a bearer token, or the console's
    #: login); at least 32 characters.
    token: Annotated[str, Meta(min_length=32)] | None = None
    #: false serves no admin listener.
    enabled: bool = True


class AlertsSettings(Options, frozen=True):
    #: Health says warn once the oldest queued webhook is older than this.
    max_backlog_age_seconds: Seconds = 300.0


class LoggingSettings(Options, frozen=True):
    format: Literal["json", "text"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: One line per answered delivery (provider, ids, status, duplicate, milliseconds).
    deliveries: bool = True


class AuditSettings(Options, frozen=True):
    #: The key that authenticates the audit chain; keep it outside the database. At least 32
    #: bytes (characters), e.g. the output of ``openssl rand -hex 32``.
    key: Annotated[str, Meta(min_length=MIN_KEY_BYTES, pattern=NOT_BLANK)] | None = None


class AwsSettings(Options, frozen=True):
    """``[aws]``: the operator commands address a deployed AWS stack instead of the database.

    Resource names default to the stack's own (``payhook-<component>-<environment>``, as
    ``infra/config.py`` names them); set one only where a stack names it otherwise.
    Credentials come from boto3's usual chain; ``AWS_ENDPOINT_URL`` is honoured by boto3.
    """

    #: true: webhooks, payments, replay, dead-letters and audit read and write the stack.
    enabled: bool = False
    #: None: boto3's default (``AWS_REGION``, the profile).
    region: Annotated[str, Meta(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None
    #: The stack's environment suffix (``-c environmentSuffix=...``).
    environment: Annotated[str, Meta(pattern=r"^[a-z](?:[a-z0-9-]{0,14}[a-z0-9])?$")] = "dev"
    #: An endpoint for every AWS call (an emulator on loopback); None: boto3's own.
    endpoint_url: Annotated[str, Meta(pattern=r"^https?://\S+$")] | None = None
    webhooks_table: Annotated[str, Meta(pattern=NOT_BLANK)] | None = None
    payments_table: Annotated[str, Meta(pattern=NOT_BLANK)] | None = None
    audit_table: Annotated[str, Meta(pattern=NOT_BLANK)] | None = None
    processing_queue: Annotated[str, Meta(pattern=NOT_BLANK)] | None = None
    dead_letter_queue: Annotated[str, Meta(pattern=NOT_BLANK)] | None = None
    #: The KMS HMAC key of the audit chain (id, ARN or alias); None: the stack's alias.
    audit_key_id: Annotated[str, Meta(pattern=NOT_BLANK)] | None = None
    #: Audit chain shards: as deployed (the stack's ``audit_shards``, 16 unless set).
    audit_shards: Annotated[int, Meta(ge=1, le=64)] = 16


class ReconcileSettings(Options, frozen=True):
    """``[reconcile]``: ``serve`` reads the providers' events APIs on an interval and stores
    the events never received as webhooks (each one raises ``payhook_missed_events_total``)."""

    enabled: bool = False
    #: Seconds between runs (each provider in turn; a run starts at once when serve starts).
    interval_seconds: Annotated[float, Meta(gt=0, le=86_400)] = 900.0
    #: Each run starts this long before the newest event the previous run saw: events can
    #: appear in an API a little after their own time.
    overlap_seconds: Annotated[float, Meta(ge=0, le=86_400)] = 600.0
    #: The furthest back a run looks (the first run, or after a long stop); Stripe lists 30 days.
    window_seconds: Annotated[float, Meta(gt=0, le=30 * 86_400)] = 86_400.0
    #: The providers to reconcile; empty: every configured provider with API credentials.
    providers: list[str] = msgspec.field(default_factory=list)


class Settings(Struct, kw_only=True, frozen=True):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    processing: ProcessingSettings = msgspec.field(default_factory=ProcessingSettings)
    outbox: OutboxSettings = msgspec.field(default_factory=OutboxSettings)
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)
    admin: AdminSettings = msgspec.field(default_factory=AdminSettings)
    alerts: AlertsSettings = msgspec.field(default_factory=AlertsSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    aws: AwsSettings = msgspec.field(default_factory=AwsSettings)
    reconcile: ReconcileSettings = msgspec.field(default_factory=ReconcileSettings)
    providers: dict[str, ProviderConfig] = msgspec.field(default_factory=dict)
    source: str = "<defaults>"


SECTIONS: dict[str, type[Options]] = {
    "server": ServerSettings,
    "storage": StorageSettings,
    "processing": ProcessingSettings,
    "outbox": OutboxSettings,
    "audit": AuditSettings,
    "admin": AdminSettings,
    "alerts": AlertsSettings,
    "logging": LoggingSettings,
    "aws": AwsSettings,
    "reconcile": ReconcileSettings,
}


def parse_settings(data: Mapping[str, Any], source: str = "<mapping>") -> Settings:
    unknown = [name for name in data if name not in SECTIONS and name != "providers"]
    if unknown:
        raise unknown_key_error(source, unknown[0], [*SECTIONS, "providers"], "section")
    sections: dict[str, Any] = {
        name: convert(data.get(name, {}), cls, name) for name, cls in SECTIONS.items()
    }
    providers_raw = data.get("providers", {})
    if not isinstance(providers_raw, Mapping):
        raise ConfigError("providers: expected a table of provider sections")
    providers = {
        name: load_provider_config(name, section) for name, section in providers_raw.items()
    }
    admin = sections["admin"]
    if admin.enabled and not admin.token and not _loopback(admin.host):
        raise ConfigError(
            f"admin.token: got nothing, expected a token of 32 characters or more: admin.host"
            f" {admin.host!r} is not a loopback address"
        )
    return Settings(**sections, providers=providers, source=source)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


_PROVIDER_ENV_OPTIONS = ("secrets", "tolerance_seconds")


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``PAYHOOK_SERVER_PORT=9000``, ``PAYHOOK_AUDIT_KEY=...``,
    ``PAYHOOK_PROVIDERS_STRIPE_SECRETS=whsec_a,whsec_b``. Each value is checked on its own, so
    an error names the variable."""
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable == "PAYHOOK_CONFIG":
            continue
        section, _, rest = variable[len(ENV_PREFIX) :].lower().partition("_")
        if section in SECTIONS and rest:
            cls = SECTIONS[section]
            try:
                checked = convert({rest: value}, cls, section, strict=False)
            except ConfigError as exc:  # name the variable, not the setting it stands for
                raise ConfigError(f"{variable}: {exc}") from None
            data.setdefault(section, {})[rest] = getattr(checked, rest)
        elif section == "providers":
            for option in _PROVIDER_ENV_OPTIONS:
                if rest.endswith("_" + option):
                    name = rest[: -len(option) - 1]
                    provider = data.setdefault("providers", {}).setdefault(name, {})
                    if option == "secrets":
                        provider[option] = value.split(",")
                    elif value.isdigit():
                        provider[option] = int(value)
                    else:
                        raise ConfigError(f"{variable}: expected a whole number of seconds")
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
    except IsADirectoryError:
        raise ConfigError(f"config file is a directory: {config_path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: invalid TOML: {exc}") from exc
    settings = parse_settings(_apply_env(data, environ), source=str(config_path))
    storage = Path(settings.storage.path)
    if not storage.is_absolute():  # the file's database, from whatever directory
        storage = config_path.resolve().parent / storage
        settings = msgspec.structs.replace(
            settings, storage=msgspec.structs.replace(settings.storage, path=str(storage))
        )
    return settings
