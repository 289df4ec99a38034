#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c environmentSuffix=staging`` (see docs/deploy.md)."""

from aws_cdk import App

from infra import build
from infra.application import environment_from_os, project_context

app = App(context=project_context())
build(app, env=environment_from_os())
app.synth()
