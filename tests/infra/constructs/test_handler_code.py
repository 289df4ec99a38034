"""The Lambda asset holds the runtime package only: no server, CLI, SQLite or CDK code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infra.constructs.handler_code import RUNTIME_PATHS, excluded_paths
from tests.infra.cfn import Synthesized

pytestmark = pytest.mark.infra

NEVER_SHIPPED = (
    "payhook/server",
    "payhook/cli",
    "payhook/backends/sqlite",
    "payhook/runtimes/embedded.py",
    "payhook/__main__.py",
)
# httpx is allowed: the reconcile function reads the providers' events APIs with it (it is in
# the dependencies layer, infra/layer/requirements.txt).
FORBIDDEN_IMPORTS = {"aws_cdk", "constructs", "cdk_nag", "starlette", "uvicorn", "sqlite3"}


def module_file(asset: Path, module: str) -> Path | None:
    base = asset.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def runtime_imports(path: Path, root: Path) -> set[str]:
    """Absolute and relative imports executed at run time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(ast.Module(node.body, []))
    }
    package = path.parent.relative_to(root).parts
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - (node.level - 1)])
                found.add(".".join([*base, node.module] if node.module else base))
            else:
                found.add(str(node.module))
    return found


def test_asset_contains_the_runtime_package_and_nothing_else(synthesized: Synthesized) -> None:
    asset = synthesized.handler_asset()
    shipped = {p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()}

    for kept in RUNTIME_PATHS:
        assert any(path == kept or path.startswith(kept + "/") for path in shipped), kept
    for path in shipped:
        assert any(path == kept or path.startswith(kept + "/") for kept in RUNTIME_PATHS), path
    for excluded in NEVER_SHIPPED:
        assert not any(path == excluded or path.startswith(excluded + "/") for path in shipped)
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in shipped)


def test_asset_contains_every_contract_handler(synthesized: Synthesized) -> None:
    asset = synthesized.handler_asset()
    for function in synthesized.resources("AWS::Lambda::Function").values():
        module, _, attribute = function["Properties"]["Handler"].rpartition(".")
        path = module_file(asset, module)
        assert path is not None, module
        tree = ast.parse(path.read_text())
        assert any(
            isinstance(node, ast.FunctionDef) and node.name == attribute for node in tree.body
        ), function["Properties"]["Handler"]


def test_asset_code_imports_no_server_cli_sqlite_or_cdk(synthesized: Synthesized) -> None:
    asset = synthesized.handler_asset()
    for path in asset.rglob("*.py"):
        roots = {name.split(".")[0] for name in runtime_imports(path, asset)}
        assert not roots & FORBIDDEN_IMPORTS, path.relative_to(asset)


def test_every_payhook_module_the_asset_imports_is_in_the_asset(synthesized: Synthesized) -> None:
    # The allowlist keeps new modules out by default; this catches one the handlers need.
    asset = synthesized.handler_asset()
    for path in asset.rglob("*.py"):
        for module in runtime_imports(path, asset):
            if module == "payhook" or module.startswith("payhook."):
                assert module_file(asset, module) is not None, (path.relative_to(asset), module)


def test_excluded_paths_cover_every_entry_outside_the_allowlist(tmp_path: Path) -> None:
    for relative in (
        "payhook/__init__.py",
        "payhook/core/model.py",
        "payhook/server/app.py",
        "payhook/runtimes/aws_lambda/receiver.py",
        "payhook/runtimes/embedded.py",
        "payhook/tools.py",
        "payhook.egg-info/PKG-INFO",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("")

    assert excluded_paths(tmp_path) == [
        "/payhook.egg-info",
        "/payhook/runtimes/embedded.py",
        "/payhook/server",
        "/payhook/tools.py",
    ]
