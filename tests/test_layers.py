"""The import graph keeps the layering of ARCHITECTURE.md: every arrow points inwards.

    cli, runtimes, server, infra     outermost: wire things together
    backends (sqlite, aws)           implement the ports
    service                          use cases: depend on ports only
    core                             pure Python, no I/O
    providers                        pure: bytes + headers in, events out

Each module under src/payhook is parsed (``ast``) for every import it makes, at the top, in a
function or under TYPE_CHECKING alike: an import anywhere is an arrow. A fresh interpreter
then imports the pure layers and checks what they pulled in, the way the Lambda does.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names)
#: What the pure layers never import, standard library or not: storage, cloud, web.
STORAGE_CLOUD_WEB = frozenset(
    {"sqlite3", "boto3", "botocore", "aws_cdk", "constructs", "starlette", "uvicorn", "httpx"}
)
#: Libraries providers may use: X.509 and RSA (PayPal), config structs, and certifi's CA bundle,
#: which PayPal's trust store falls back to only when the system has none (an optional import).
PROVIDER_LIBRARIES = frozenset({"cryptography", "msgspec", "certifi"})
#: The outermost layers: nothing inside them imports these.
OUTER = frozenset({"runtimes", "server", "cli"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SOURCE / "payhook").rglob("*.py"))}


def parse_imports(source: str, package: str, known: frozenset[str]) -> frozenset[str]:
    """Every module a source imports, relative imports resolved against ``package``; ``from a
    import b`` is ``a.b`` when that is one of the ``known`` modules."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = str(node.module)
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                found.add(submodule if submodule in known else origin)
    return frozenset(found)


@cache
def imports(module: str) -> frozenset[str]:
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return parse_imports(path.read_text(), package, frozenset(modules()))


def layer(module: str) -> str:
    """``payhook.backends.sqlite.store`` -> ``backends``; ``payhook.errors`` -> ``errors``;
    ``payhook.__main__`` (``python -m payhook``) is the command line."""
    parts = module.split(".")
    if parts[0] != "payhook":
        return "external"
    if len(parts) == 1:
        return "payhook"
    return "cli" if parts[1] == "__main__" else parts[1]


def top(name: str) -> str:
    return name.split(".")[0]


def in_layer(name: str) -> list[str]:
    return [m for m in modules() if layer(m) == name]


def violations(
    found: frozenset[str],
    *,
    allowed_layers: set[str] | None = None,
    forbidden_layers: frozenset[str] = frozenset(),
    libraries: frozenset[str] | None = None,
) -> list[str]:
    """The imports in ``found`` that break a rule: a payhook module outside ``allowed_layers``
    (when given) or in ``forbidden_layers``; a library other than the standard library and
    ``libraries`` (when given); storage, cloud or web libraries (when ``libraries`` is given,
    since only the pure layers say which libraries they may use)."""
    wrong = []
    for name in sorted(found):
        if top(name) == "payhook":
            if layer(name) in forbidden_layers or (
                allowed_layers is not None and layer(name) not in allowed_layers
            ):
                wrong.append(name)
        elif libraries is not None and (
            top(name) in STORAGE_CLOUD_WEB
            or (top(name) not in STANDARD_LIBRARY and top(name) not in libraries)
        ):
            wrong.append(name)
    return wrong


def test_every_layer_of_the_architecture_has_modules() -> None:
    # Guards the parametrizations below against a rename that would empty them.
    for name in ("core", "providers", "service", "backends", "runtimes", "server", "cli"):
        assert in_layer(name), name


@pytest.mark.parametrize("module", in_layer("core"))
def test_core_imports_only_core_errors_and_the_standard_library(module: str) -> None:
    wrong = violations(
        imports(module), allowed_layers={"payhook", "core", "errors"}, libraries=frozenset()
    )
    assert not wrong, f"{module} imports {', '.join(wrong)}"


@pytest.mark.parametrize("module", in_layer("providers"))
def test_providers_import_only_core_errors_options_providers_and_their_libraries(
    module: str,
) -> None:
    wrong = violations(
        imports(module),
        allowed_layers={"payhook", "core", "errors", "options", "providers"},
        libraries=PROVIDER_LIBRARIES,
    )
    assert not wrong, f"{module} imports {', '.join(wrong)}"


@pytest.mark.parametrize("module", in_layer("service"))
def test_service_imports_no_backend_runtime_server_or_cli(module: str) -> None:
    wrong = violations(imports(module), forbidden_layers=OUTER | {"backends"})
    assert not wrong, f"{module} imports {', '.join(wrong)}"


@pytest.mark.parametrize("module", in_layer("backends"))
def test_backends_import_no_service_runtime_server_or_cli(module: str) -> None:
    wrong = violations(imports(module), forbidden_layers=OUTER | {"service"})
    assert not wrong, f"{module} imports {', '.join(wrong)}"


@pytest.mark.parametrize("module", [m for m in modules() if layer(m) != "cli"])
def test_nothing_imports_the_cli(module: str) -> None:
    wrong = violations(imports(module), forbidden_layers=frozenset({"cli"}))
    assert not wrong, f"{module} imports {', '.join(wrong)}"


def test_the_pure_layers_load_no_storage_cloud_or_web_library_when_imported() -> None:
    # What actually loads, transitively, in a fresh interpreter (as in a Lambda cold start).
    pure = [m for m in modules() if layer(m) in ("core", "providers")]
    code = (
        "import importlib, json, sys\n"
        f"for name in {pure!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(done.stdout))
    assert "payhook" in loaded
    assert not loaded & STORAGE_CLOUD_WEB, sorted(loaded & STORAGE_CLOUD_WEB)


def test_the_checks_see_every_kind_of_import_and_name_the_offender() -> None:
    # Relative, nested and TYPE_CHECKING imports are arrows too; each rule names what breaks it.
    source = (
        "from typing import TYPE_CHECKING\n"
        "from ..backends.sqlite import store\n"
        "from . import model\n"
        "if TYPE_CHECKING:\n"
        "    import sqlite3\n"
        "def lazy():\n"
        "    from payhook.cli import main\n"
        "    import requests\n"
    )
    found = parse_imports(source, "payhook.core", frozenset(modules()))
    assert found == {
        "typing",
        "payhook.backends.sqlite.store",
        "payhook.core.model",
        "sqlite3",
        "payhook.cli.main",
        "requests",
    }
    assert violations(found, allowed_layers={"core"}, libraries=frozenset()) == [
        "payhook.backends.sqlite.store",
        "payhook.cli.main",
        "requests",
        "sqlite3",
    ]
    assert violations(found, forbidden_layers=frozenset({"cli"})) == ["payhook.cli.main"]
    assert violations(found, libraries=frozenset({"requests"}), allowed_layers=None) == ["sqlite3"]
