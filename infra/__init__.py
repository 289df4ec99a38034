"""AWS CDK (Python) definition of payhook's serverless runtime.

``PayhookService`` is the reusable construct; ``PayhookStack`` deploys one environment of it;
``build`` adds that stack, configured from CDK context, to an app (see ``app.py``).
"""

from infra.application import build
from infra.config import PayhookSettings, SettingsError
from infra.service import PayhookService
from infra.stack import PayhookStack

__all__ = ["PayhookService", "PayhookSettings", "PayhookStack", "SettingsError", "build"]
