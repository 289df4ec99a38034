"""The WAFv2 web ACL in front of the API stage.

Rules, in evaluation order:

0. ``RateLimitPerIp``: more than ``waf_rate_limit_per_60s`` requests (default 600, i.e. 10/s)
   from one IP within a 60 s window are blocked with 429; providers retry non-2xx later.
1. ``BodyTooLarge``: a ``Content-Length`` of 2,000,000 bytes or more is answered 413, with the
   receiver's JSON error, before Lambda. Lambda takes 6 MB of event, and API Gateway sends it
   the body in base64 (4/3 larger) plus headers, so bodies from about 4.4 MB up to API
   Gateway's 10 MB would otherwise fail with a 5xx, which providers retry for days. WAF reads
   only the first kilobytes of a body, so the rule reads the header; bodies between the
   receiver's limit (1 MiB) and 2 MB still reach the receiver, which answers 413 itself.
2. ``AmazonIpReputationList``: known malicious sources.
3. ``KnownBadInputs``: request patterns of known exploits (Log4j and the like).
4. ``CommonRuleSet``: the OWASP-style core rules, except that ``SizeRestrictions_BODY`` only
   counts. That rule blocks bodies over 8 KB, and real webhooks exceed it (an expanded Stripe
   event, an Adyen batch, a GoCardless events array); the receiver enforces its own limit
   (``PAYHOOK_BODY_LIMIT_BYTES``, 1 MiB) and authenticates every body by its signature.

Logs go to ``aws-waf-logs-payhook-<suffix>`` (WAF requires the prefix) with the
``authorization`` header and the query string redacted.
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.config import PayhookSettings
from infra.constructs.log_groups import encrypted_log_group

RATE_WINDOW_SECONDS = 60
BODY_SIZE_RULE = "SizeRestrictions_BODY"
# Content-Length >= 2,000,000: seven digits from 2, or eight or more (leading zeros allowed).
LARGE_CONTENT_LENGTH = r"^0*([2-9][0-9]{6}|[1-9][0-9]{7,})$"
LARGE_CONTENT_LENGTH_BYTES = 2_000_000
TOO_LARGE_BODY_KEY = "body-too-large"
MANAGED_RULE_GROUPS = (
    ("AmazonIpReputationList", "AWSManagedRulesAmazonIpReputationList"),
    ("KnownBadInputs", "AWSManagedRulesKnownBadInputsRuleSet"),
    ("CommonRuleSet", "AWSManagedRulesCommonRuleSet"),
)


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True,
        metric_name=metric_name,
        sampled_requests_enabled=True,
    )


def _managed_rule(
    priority: int, rule_name: str, group: str, suffix: str
) -> wafv2.CfnWebACL.RuleProperty:
    overrides = (
        [
            wafv2.CfnWebACL.RuleActionOverrideProperty(
                name=BODY_SIZE_RULE,
                action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
            )
        ]
        if group == "AWSManagedRulesCommonRuleSet"
        else None
    )
    return wafv2.CfnWebACL.RuleProperty(
        name=rule_name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS", name=group, rule_action_overrides=overrides
            )
        ),
        visibility_config=_visibility(f"payhook-{suffix}-{rule_name}"),
    )


class WebhookFirewall(Construct):
    """A regional web ACL, associated with the API stage, logging to CloudWatch Logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        key: kms.IKey,
        stage_arn: str,
        body_limit_bytes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        if not 0 < body_limit_bytes < LARGE_CONTENT_LENGTH_BYTES:
            raise ValueError(
                f"body_limit_bytes: got {body_limit_bytes}, expected less than"
                f" {LARGE_CONTENT_LENGTH_BYTES} (the firewall's own limit)"
            )
        # The same answer the receiver gives (payhook.service.ingest.Ingest.too_large).
        too_large = json.dumps(
            {"error": "body_too_large", "reason": f"the body limit is {body_limit_bytes} bytes"},
            separators=(",", ":"),
        )
        suffix = settings.environment_suffix
        rate_rule = wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerIp",
            priority=0,
            action=wafv2.CfnWebACL.RuleActionProperty(
                block=wafv2.CfnWebACL.BlockActionProperty(
                    custom_response=wafv2.CfnWebACL.CustomResponseProperty(response_code=429)
                )
            ),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    aggregate_key_type="IP",
                    evaluation_window_sec=RATE_WINDOW_SECONDS,
                    limit=settings.waf_rate_limit_per_60s,
                )
            ),
            visibility_config=_visibility(f"payhook-{suffix}-RateLimitPerIp"),
        )
        size_rule = wafv2.CfnWebACL.RuleProperty(
            name="BodyTooLarge",
            priority=1,
            action=wafv2.CfnWebACL.RuleActionProperty(
                block=wafv2.CfnWebACL.BlockActionProperty(
                    custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                        response_code=413, custom_response_body_key=TOO_LARGE_BODY_KEY
                    )
                )
            ),
            statement=wafv2.CfnWebACL.StatementProperty(
                regex_match_statement=wafv2.CfnWebACL.RegexMatchStatementProperty(
                    field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(
                        single_header={"Name": "content-length"}
                    ),
                    regex_string=LARGE_CONTENT_LENGTH,
                    text_transformations=[
                        wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                    ],
                )
            ),
            visibility_config=_visibility(f"payhook-{suffix}-BodyTooLarge"),
        )
        managed = [
            _managed_rule(priority, rule_name, group, suffix)
            for priority, (rule_name, group) in enumerate(MANAGED_RULE_GROUPS, start=2)
        ]
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=settings.name("waf"),
            description=f"payhook {suffix}: webhook API",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            rules=[rate_rule, size_rule, *managed],
            custom_response_bodies={
                TOO_LARGE_BODY_KEY: wafv2.CfnWebACL.CustomResponseBodyProperty(
                    content_type="APPLICATION_JSON", content=too_large
                )
            },
            visibility_config=_visibility(f"payhook-{suffix}-webacl"),
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage_arn, web_acl_arn=self.web_acl.attr_arn
        )

        self.log_group_name = f"aws-waf-logs-payhook-{suffix}"
        self.log_group = encrypted_log_group(
            self, "Logs", name=self.log_group_name, settings=settings, key=key
        )
        # WAF wants the log group ARN without the ":*" that the Arn attribute ends with.
        destination = Stack.of(self).format_arn(
            service="logs",
            resource="log-group",
            resource_name=self.log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        logging = wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[destination],
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(
                    single_header={"Name": "authorization"}
                ),
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(query_string={}),
            ],
        )
        logging.node.add_dependency(self.log_group)
