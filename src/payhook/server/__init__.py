"""The embedded HTTP server (Starlette on uvicorn)."""

from payhook.server.app import create_app

__all__ = ["create_app"]
