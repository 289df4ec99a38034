"""One authenticated request to a console page or action, as the page functions see it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from payhook.console.session import Session

#: Where the console is mounted on the admin listener.
PREFIX = "/console"


@dataclass
class Call:
    """One request to a page or action, authenticated."""

    request: Request
    session: Session
    csrf: str
    form: dict[str, list[str]] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        """A query parameter, stripped; None when blank."""
        value = self.request.query_params.get(name, "").strip()
        return value or None

    def value(self, name: str) -> str | None:
        """A form field (or else a query parameter), stripped; None when blank."""
        values = self.form.get(name)
        value = values[0].strip() if values else ""
        return value or self.param(name)

    def values(self, name: str) -> list[str]:
        return [v.strip() for v in self.form.get(name, []) if v.strip()]


Handler = Callable[[Any, Call], Response]  # (Console, Call)
