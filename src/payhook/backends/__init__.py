"""Backends implementing the ports: ``sqlite`` (embedded) and ``aws`` (serverless)."""
