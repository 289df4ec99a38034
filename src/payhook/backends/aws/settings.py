"""Typed settings of the AWS runtime, read from the environment once per cold start.

Each Lambda needs a subset: it names the settings it requires and gets a clear
"got X, expected Y" error at cold start when one is missing or malformed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from payhook.errors import ConfigError

# Lambda's synchronous invocation payload limit: a larger body can never reach the receiver.
MAX_BODY_LIMIT_BYTES = 6 * 1024 * 1024
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
_QUEUE_URL = re.compile(r"^https?://\S+/\d{12}/\S+$")
# A key ARN, an alias ARN, an alias name or a key id (as KMS accepts for KeyId).
_KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/\S+|alias/\S+|(mrk-)?[0-9a-f-]{32,36})$"
)

ENV_NAMES: dict[str, str] = {
    "webhooks_table": "PAYHOOK_WEBHOOKS_TABLE",
    "payments_table": "PAYHOOK_PAYMENTS_TABLE",
    "audit_table": "PAYHOOK_AUDIT_TABLE",
    "queue_url": "PAYHOOK_QUEUE_URL",
    "event_bus_name": "PAYHOOK_EVENT_BUS_NAME",
    "providers_secret_arn": "PAYHOOK_PROVIDERS_SECRET_ARN",
    "audit_key_id": "PAYHOOK_AUDIT_KEY_ID",
    "environment": "PAYHOOK_ENVIRONMENT",
}


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """Resource names and limits. A name a Lambda does not require may be empty."""

    environment: str
    webhooks_table: str = ""
    payments_table: str = ""
    audit_table: str = ""
    queue_url: str = ""
    event_bus_name: str = ""
    providers_secret_arn: str = ""
    #: The KMS HMAC key (HMAC_256) that authenticates the audit chain.
    audit_key_id: str = ""
    body_limit_bytes: int = 1024 * 1024
    raw_payload_retention_days: int = 30
    secret_cache_seconds: int = 300
    #: The processing queue's maxReceiveCount: the last attempt marks the webhook dead.
    max_receive_count: int = 5
    #: The sweeper re-queues a webhook still ``received`` this long after it was last queued.
    sweep_after_seconds: int = 600
    #: At most this many webhooks per sweep, so one run fits the function's timeout.
    sweep_limit: int = 1000
    #: Audit chain shards (``shards.py``): fixed once a stack has audited anything.
    audit_shards: int = 1
    service_name: str = "payhook"

    @property
    def raw_payload_retention_seconds(self) -> int:
        return self.raw_payload_retention_days * 86_400


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(f"{name}: got {raw!r}, expected an integer from {low} to {high}")
    return value


def _check_format(name: str, value: str) -> None:
    if name == "providers_secret_arn" and not _SECRET_ARN.match(value):
        raise ConfigError(
            f"{ENV_NAMES[name]}: got {value!r}, expected a Secrets Manager secret ARN"
            " (arn:aws:secretsmanager:<region>:<account>:secret:<name>)"
        )
    if name == "audit_key_id" and not _KMS_KEY.match(value):
        raise ConfigError(
            f"{ENV_NAMES[name]}: got {value!r}, expected a KMS key ARN, key id or alias"
            " (arn:aws:kms:<region>:<account>:key/<id>)"
        )
    if name == "queue_url" and not _QUEUE_URL.match(value):
        raise ConfigError(
            f"{ENV_NAMES[name]}: got {value!r}, expected an SQS queue URL"
            " (https://sqs.<region>.amazonaws.com/<account>/<queue>)"
        )


def load_settings(environ: Mapping[str, str], required: Iterable[str]) -> AwsSettings:
    """Validate the environment; ``required`` names the fields this Lambda cannot run without."""
    names: dict[str, str] = {}
    for field_name in {"environment", *required}:
        env_name = ENV_NAMES.get(field_name)
        if env_name is None:
            known = ", ".join(sorted(ENV_NAMES))
            raise ConfigError(f"unknown setting {field_name!r}; expected one of: {known}")
        value = environ.get(env_name, "").strip()
        if not value:
            raise ConfigError(f"{env_name}: got nothing, expected a non-empty value")
        _check_format(field_name, value)
        names[field_name] = value
    for field_name, env_name in ENV_NAMES.items():
        if field_name not in names and environ.get(env_name, "").strip():
            names[field_name] = environ[env_name].strip()
            _check_format(field_name, names[field_name])
    return AwsSettings(
        **names,
        body_limit_bytes=_integer(
            environ, "PAYHOOK_BODY_LIMIT_BYTES", 1024 * 1024, 1, MAX_BODY_LIMIT_BYTES
        ),
        raw_payload_retention_days=_integer(
            environ, "PAYHOOK_RAW_PAYLOAD_RETENTION_DAYS", 30, 1, 3650
        ),
        secret_cache_seconds=_integer(environ, "PAYHOOK_SECRET_CACHE_SECONDS", 300, 0, 86_400),
        max_receive_count=_integer(environ, "PAYHOOK_MAX_RECEIVE_COUNT", 5, 1, 1000),
        sweep_after_seconds=_integer(environ, "PAYHOOK_SWEEP_AFTER_SECONDS", 600, 60, 86_400),
        sweep_limit=_integer(environ, "PAYHOOK_SWEEP_LIMIT", 1000, 1, 10_000),
        audit_shards=_integer(environ, "PAYHOOK_AUDIT_SHARDS", 1, 1, 64),
        service_name=environ.get("POWERTOOLS_SERVICE_NAME", "").strip() or "payhook",
    )
