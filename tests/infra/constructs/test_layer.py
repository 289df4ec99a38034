"""The dependencies layer: a real source path, the functions' platform, the imports it serves."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from infra.constructs.layer import LAYER_SOURCE, REQUIREMENTS, PipLayerBundling, pip_command
from tests.infra.cfn import Synthesized

pytestmark = pytest.mark.infra

REPO_ROOT = Path(__file__).resolve().parents[3]
# Importable on Lambda without the layer.
RUNTIME_PROVIDED = {"boto3", "botocore"}


def requirement_names() -> dict[str, str]:
    """Import name -> pinned requirement line."""
    names = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[=<>!~\[ ]", line, maxsplit=1)[0]
            names[name.lower().replace("-", "_")] = line
    return names


def optional_imports(tree: ast.AST) -> set[int]:
    """Line numbers of imports guarded by ``except ImportError``."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
            for h in node.handlers
        ):
            lines |= {n.lineno for n in ast.walk(ast.Module(node.body, [])) if hasattr(n, "lineno")}
    return lines


def third_party_imports(root: Path) -> set[str]:
    found = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        optional = optional_imports(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and node.lineno not in optional:
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif (
                isinstance(node, ast.ImportFrom) and node.level == 0 and node.lineno not in optional
            ):
                found.add(str(node.module).split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "payhook"}


def test_layer_asset_path_exists(synthesized: Synthesized) -> None:
    assets = json.loads(
        (synthesized.outdir / f"{synthesized.stack.artifact_id}.assets.json").read_text()
    )
    sources = {
        entry["displayName"]: synthesized.outdir / entry["source"]["path"]
        for entry in assets["files"].values()
    }
    layer_source = next(path for name, path in sources.items() if "Dependencies/Layer" in name)

    assert all(path.exists() for path in sources.values()), sources
    assert layer_source.resolve() == LAYER_SOURCE
    assert (layer_source / "requirements.txt").is_file()


def test_layer_is_built_for_the_platform_the_functions_run_on(synthesized: Synthesized) -> None:
    layer_id, layer = synthesized.only("AWS::Lambda::LayerVersion")
    command = pip_command("/out")
    option = {command[i]: command[i + 1] for i in range(len(command) - 1)}

    for function in synthesized.resources("AWS::Lambda::Function").values():
        props = function["Properties"]
        assert props["Layers"] == [{"Ref": layer_id}]
        assert props["Runtime"] in layer["Properties"]["CompatibleRuntimes"]
        assert props["Architectures"] == layer["Properties"]["CompatibleArchitectures"]
        assert props["Runtime"] == "python" + option["--python-version"]
        assert props["Architectures"] == ["arm64"]
        assert option["--platform"].endswith("_aarch64")
    assert option["--target"] == "/out/python"  # where Lambda looks for layer packages
    assert "--only-binary=:all:" in command


def test_layer_requirements_are_exactly_what_the_handler_code_imports(
    synthesized: Synthesized,
) -> None:
    needed = third_party_imports(synthesized.handler_asset()) - RUNTIME_PROVIDED

    assert needed == set(requirement_names())
    assert all("==" in line for line in requirement_names().values())


def test_layer_covers_the_packages_runtime_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[=<>!~\[ ;]", dependency, maxsplit=1)[0].lower().replace("-", "_")
        for dependency in project["dependencies"]
    }

    assert declared <= set(requirement_names())


def _wheel(directory: Path, name: str) -> Path:
    """A minimal pure-Python wheel, so the bundler can be exercised without a network."""
    dist = f"{name}-1.0"
    files = {
        f"{name}/__init__.py": b"VALUE = 1\n",
        f"{dist}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()
        ),
        f"{dist}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{path},sha256="
        + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        + f",{len(data)}"
        for path, data in files.items()
    ]
    files[f"{dist}.dist-info/RECORD"] = (
        "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n"
    ).encode()
    path = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
    return path


def test_local_bundling_installs_requirements_under_python_without_docker(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{_wheel(tmp_path, 'payhooklayerprobe')}\n")
    output = tmp_path / "out"

    bundled = PipLayerBundling(requirements).try_bundle(str(output), image=None)  # type: ignore[arg-type]

    assert bundled is True
    assert (output / "python" / "payhooklayerprobe" / "__init__.py").read_text() == "VALUE = 1\n"


def test_local_bundling_fails_loudly_when_pip_fails(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{tmp_path / 'missing-1.0-py3-none-any.whl'}\n")

    with pytest.raises(RuntimeError, match="pip could not build the Lambda layer"):
        PipLayerBundling(requirements).try_bundle(str(tmp_path / "out"), image=None)  # type: ignore[arg-type]
