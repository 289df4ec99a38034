"""The web console on the admin listener (``/console``): deliveries, payments, dead letters
and live figures, server-rendered (Jinja2, autoescaped) with htmx shipped in the package.

Wiring, in ``payhook serve``::

    console = Console(runtime)
    admin = create_admin_app(
        runtime, token=settings.admin.token, extra_routes=console.routes(), open_paths=OPEN_PATHS
    )
    console.start()  # after runtime.start(); console.stop() before runtime.stop()
"""

from payhook.console.call import PREFIX
from payhook.console.host import ConsoleHost
from payhook.console.web import OPEN_PATHS, Console

__all__ = ["OPEN_PATHS", "PREFIX", "Console", "ConsoleHost"]
