"""The Secrets Manager secret holding the provider configuration.

Its value is the JSON form of the ``[providers.<name>]`` TOML sections::

    {"providers": {"stripe": {"secrets": ["whsec_..."], "tolerance_seconds": 300}}}

The stack creates it with an empty placeholder; operators load the real value with
``aws secretsmanager put-secret-value`` (docs/deploy.md). CloudFormation writes the placeholder
only when the secret is created or the placeholder itself changes, so keep it constant.
"""

from __future__ import annotations

import json

from aws_cdk import SecretValue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import PayhookSettings

PLACEHOLDER = json.dumps({"providers": {}})


class ProvidersSecret(Construct):
    """A KMS-encrypted secret whose initial value configures no provider."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            secret_name=settings.name("providers"),
            description=f"payhook {settings.environment_suffix}: provider signing configuration",
            encryption_key=key,
            # Not a secret: an empty provider table, replaced out of band.
            secret_string_value=SecretValue.unsafe_plain_text(PLACEHOLDER),
            removal_policy=settings.removal_policy,
        )
