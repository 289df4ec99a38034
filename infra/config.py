"""Deployment settings of the payhook AWS stack: typed, defaulted, validated when built.

Every value can be set from Python; the ones an operator sets per deployment can also come from
CDK context (``-c environmentSuffix=staging``). Errors say what was given and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_cdk import RemovalPolicy

DEFAULT_PRODUCTION_SUFFIXES = ("prod", "production", "live")
# Short enough that "payhook-processing-dlq-<suffix>" and every other name stays within limits.
SUFFIX_PATTERN = re.compile(r"[a-z](?:[a-z0-9-]{0,14}[a-z0-9])?")
# The retention periods CloudWatch Logs accepts, by days, as aws_logs.RetentionDays members.
LOG_RETENTION_DAYS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
    2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip
API_GATEWAY_MAX_INTEGRATION_SECONDS = 29
DOMAIN_PATTERN = re.compile(r"(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
CERTIFICATE_PATTERN = re.compile(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}")


class SettingsError(ValueError):
    """A deployment setting has a value the stack cannot use."""


def _int_between(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"{name}: got {value!r}, expected an integer from {low} to {high}")


def _suffix(name: str, value: object) -> None:
    if not isinstance(value, str) or not SUFFIX_PATTERN.fullmatch(value):
        raise SettingsError(
            f"{name}: got {value!r}, expected 1-16 lowercase letters, digits or hyphens,"
            " starting with a letter and not ending with a hyphen"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PayhookSettings:
    """Everything that may differ between two payhook deployments."""

    environment_suffix: str = "dev"
    production_suffixes: tuple[str, ...] = DEFAULT_PRODUCTION_SUFFIXES
    # None: no reserved concurrency. Reserving it takes capacity from the account's unreserved
    # pool (AWS keeps at least 100 unreserved), so a fixed default fails in small accounts.
    reserved_concurrency: int | None = None
    processor_max_concurrency: int = 10
    api_throttle_rate_per_second: int = 100
    api_throttle_burst: int = 200
    waf_rate_limit_per_60s: int = 600
    receiver_timeout_seconds: int = 10
    processor_timeout_seconds: int = 30
    audit_timeout_seconds: int = 60
    receiver_memory_mb: int = 512
    processor_memory_mb: int = 512
    audit_memory_mb: int = 256
    log_retention_days: int | None = None  # None: 365 when production-like, else 30
    raw_payload_retention_days: int = 30
    secret_cache_seconds: int = 300
    # Batching windows: how long an event source gathers records before invoking. Longer
    # windows mean fewer, fuller invocations (docs/deploy.md: cost) and later ledger entries
    # (processor) or audit entries and published events (audit): 2 s and 5 s keep the targets
    # of docs/deploy.md, ledger within 5 s and events within 15 s of the acknowledgment.
    processor_batching_window_seconds: int = 2
    audit_batching_window_seconds: int = 5
    sweep_every_minutes: int = 5
    # A webhook still received this long after it was last queued or attempted is re-queued.
    sweep_after_seconds: int = 600
    queue_age_alarm_seconds: int = 300
    # Dead letters expire 14 days after their first send: alarm well before.
    dead_letter_age_alarm_seconds: int = 7 * 86_400
    # Records expire from the streams after 24 h (and go to audit-failures after 6 h).
    audit_iterator_age_alarm_seconds: int = 600
    # Audit chain shards (payhook/backends/aws/shards.py): appends of different shards never
    # race for one head item. Fixed once the stack has audited anything: a stack of one chain
    # may move to N shards once; N to M loses each subject's order (docs/deploy.md).
    audit_shards: int = 16
    # Reconciliation from the providers' events APIs (infra/reconcile.py) every this many
    # minutes; 0: off (it needs API credentials in the providers secret).
    reconcile_every_minutes: int = 0
    verification_failures_alarm_threshold: int = 20
    waf_blocked_alarm_threshold: int = 100  # per 5 minutes
    api_4xx_alarm_threshold: int = 100  # per 5 minutes
    alert_email: str | None = None
    # A custom domain keeps the URL registered at every provider when the API is replaced:
    # both or neither. The certificate is an ACM certificate in the stack's region.
    domain_name: str | None = None
    certificate_arn: str | None = None
    # API Gateway writes logs through ONE role per account and region, set by
    # AWS::ApiGateway::Account. Opt in only where no role is set yet: a stack that sets it
    # overwrites the role other APIs of the account rely on.
    api_gateway_cloudwatch_role: bool = False

    def __post_init__(self) -> None:
        _suffix("environment_suffix", self.environment_suffix)
        if not isinstance(self.production_suffixes, tuple):
            raise SettingsError(
                f"production_suffixes: got {type(self.production_suffixes).__name__},"
                " expected a tuple of suffixes"
            )
        for suffix in self.production_suffixes:
            _suffix("production_suffixes[]", suffix)
        _int_between("processor_max_concurrency", self.processor_max_concurrency, 2, 1000)
        if self.reserved_concurrency is not None:
            _int_between(
                "reserved_concurrency",
                self.reserved_concurrency,
                self.processor_max_concurrency,
                10_000,
            )
        _int_between("api_throttle_rate_per_second", self.api_throttle_rate_per_second, 1, 10_000)
        _int_between("api_throttle_burst", self.api_throttle_burst, 1, 5_000)
        _int_between("waf_rate_limit_per_60s", self.waf_rate_limit_per_60s, 10, 2_000_000_000)
        _int_between(
            "receiver_timeout_seconds",
            self.receiver_timeout_seconds,
            1,
            API_GATEWAY_MAX_INTEGRATION_SECONDS,
        )
        # 6x the processor timeout is the queue's visibility timeout, which SQS caps at 12 h.
        _int_between("processor_timeout_seconds", self.processor_timeout_seconds, 1, 900)
        _int_between("audit_timeout_seconds", self.audit_timeout_seconds, 1, 900)
        for name in ("receiver_memory_mb", "processor_memory_mb", "audit_memory_mb"):
            _int_between(name, getattr(self, name), 128, 10_240)
        if self.log_retention_days is not None and self.log_retention_days not in (
            LOG_RETENTION_DAYS
        ):
            raise SettingsError(
                f"log_retention_days: got {self.log_retention_days!r}, expected one of"
                f" {sorted(LOG_RETENTION_DAYS)}"
            )
        _int_between("raw_payload_retention_days", self.raw_payload_retention_days, 1, 3650)
        _int_between("secret_cache_seconds", self.secret_cache_seconds, 0, 86_400)
        _int_between("queue_age_alarm_seconds", self.queue_age_alarm_seconds, 60, 1_209_600)
        for name in ("processor_batching_window_seconds", "audit_batching_window_seconds"):
            _int_between(name, getattr(self, name), 0, 300)  # the event source maximum
        _int_between("sweep_every_minutes", self.sweep_every_minutes, 1, 60)
        _int_between("sweep_after_seconds", self.sweep_after_seconds, 60, 86_400)
        _int_between(
            "dead_letter_age_alarm_seconds", self.dead_letter_age_alarm_seconds, 60, 1_209_600
        )
        _int_between(
            "audit_iterator_age_alarm_seconds", self.audit_iterator_age_alarm_seconds, 60, 86_400
        )
        _int_between("audit_shards", self.audit_shards, 1, 64)
        if self.reconcile_every_minutes:
            _int_between("reconcile_every_minutes", self.reconcile_every_minutes, 5, 1440)
        for name in ("waf_blocked_alarm_threshold", "api_4xx_alarm_threshold"):
            _int_between(name, getattr(self, name), 1, 1_000_000)
        _custom_domain(self.domain_name, self.certificate_arn)
        if not isinstance(self.api_gateway_cloudwatch_role, bool):
            raise SettingsError(
                f"api_gateway_cloudwatch_role: got {self.api_gateway_cloudwatch_role!r},"
                " expected True or False"
            )
        _int_between(
            "verification_failures_alarm_threshold",
            self.verification_failures_alarm_threshold,
            1,
            1_000_000,
        )
        if self.alert_email is not None and (
            not isinstance(self.alert_email, str)
            or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.alert_email)
        ):
            raise SettingsError(
                f"alert_email: got {self.alert_email!r}, expected an e-mail address"
            )

    @property
    def is_production(self) -> bool:
        return self.environment_suffix in self.production_suffixes

    @property
    def removal_policy(self) -> RemovalPolicy:
        """Keep data and keys of production-like deployments when the stack goes away."""
        return RemovalPolicy.RETAIN if self.is_production else RemovalPolicy.DESTROY

    @property
    def effective_log_retention_days(self) -> int:
        if self.log_retention_days is not None:
            return self.log_retention_days
        return 365 if self.is_production else 30

    @property
    def processing_visibility_timeout_seconds(self) -> int:
        # AWS guidance for SQS event sources: at least 6x the function timeout, so a message
        # is not redelivered while the retries of one batch are still running.
        return 6 * self.processor_timeout_seconds

    def name(self, component: str) -> str:
        """The physical name of a resource: ``payhook-<component>-<suffix>``."""
        return f"payhook-{component}-{self.environment_suffix}"

    def log_group_name(self, component: str) -> str:
        return f"/payhook/{self.environment_suffix}/{component}"

    @classmethod
    def from_context(cls, get: Callable[[str], Any], **overrides: Any) -> PayhookSettings:
        """Read the per-deployment values from CDK context (``node.try_get_context``)."""
        values: dict[str, Any] = {}
        suffix = get("environmentSuffix")
        if suffix is not None:
            values["environment_suffix"] = suffix
        production = get("productionSuffixes")
        if production is not None:
            if isinstance(production, str):
                production = [part.strip() for part in production.split(",") if part.strip()]
            if not isinstance(production, list):
                raise SettingsError(
                    f"productionSuffixes: got {production!r}, expected a list or a"
                    " comma-separated string"
                )
            values["production_suffixes"] = tuple(production)
        reserved = get("reservedConcurrency")
        if reserved is not None:
            values["reserved_concurrency"] = _context_int("reservedConcurrency", reserved)
        for key, field_name in (
            ("alertEmail", "alert_email"),
            ("domainName", "domain_name"),
            ("certificateArn", "certificate_arn"),
        ):
            if get(key) is not None:
                values[field_name] = get(key)
        shards = get("auditShards")
        if shards is not None:
            values["audit_shards"] = _context_int("auditShards", shards)
        reconcile = get("reconcileEveryMinutes")
        if reconcile is not None:
            values["reconcile_every_minutes"] = _context_int("reconcileEveryMinutes", reconcile)
        role = get("apiGatewayCloudWatchRole")
        if role is not None:
            values["api_gateway_cloudwatch_role"] = _context_bool("apiGatewayCloudWatchRole", role)
        values.update(overrides)
        return cls(**values)


def _context_int(name: str, value: object) -> int:
    # `-c key=5` arrives as the string "5"; cdk.json values arrive as JSON numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise SettingsError(f"{name}: got {value!r}, expected an integer")


def _context_bool(name: str, value: object) -> bool:
    # `-c key=true` arrives as the string "true"; cdk.json values arrive as JSON booleans.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise SettingsError(f"{name}: got {value!r}, expected true or false")


def _custom_domain(domain_name: object, certificate_arn: object) -> None:
    if domain_name is None and certificate_arn is None:
        return
    if not isinstance(domain_name, str) or not DOMAIN_PATTERN.fullmatch(domain_name):
        raise SettingsError(
            f"domain_name: got {domain_name!r}, expected a lowercase host name such as"
            " webhooks.example.com (set together with certificate_arn)"
        )
    if not isinstance(certificate_arn, str) or not CERTIFICATE_PATTERN.fullmatch(certificate_arn):
        raise SettingsError(
            f"certificate_arn: got {certificate_arn!r}, expected an ACM certificate ARN"
            " (arn:aws:acm:<region>:<account>:certificate/<id>, set together with domain_name)"
        )
