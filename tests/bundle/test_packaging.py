"""Templates and schemas reach installed wheels, and the explicit package list in pyproject.toml is complete."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_deploykit_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "deploykit").rglob("*.py")
               if "__pycache__" not in p.parts}
    missing = sorted(on_disk - listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_wheel_ships_templates_and_schemas_and_finds_them_installed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    for name in ("deploykit", "templates"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(installed)  # a pure-Python wheel unpacked is its installed layout
    for expected in ("deploykit/templates/README.md.tmpl", "deploykit/templates/swift/DeployKitModel.swift.tmpl",
                     "deploykit/templates/kotlin/DeployKitModel.kt.tmpl", "deploykit/bundle/schemas/manifest.schema.json"):
        assert expected in names
    code = ("from deploykit.bundle.templates import template_root; from deploykit.bundle.manifest import _validators;"
            "import deploykit; _validators(); print(template_root()); print(deploykit.__file__)")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
                         cwd=tmp_path, check=True, capture_output=True, text=True, timeout=120).stdout.split()
    assert out[0] == str(installed / "deploykit" / "templates") and out[1].startswith(str(installed))
