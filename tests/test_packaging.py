"""What a wheel puts on a user's system: only `impasto` at the top of site-packages (the doors
install as impasto.gradio_app, impasto.hotfolder, impasto.plugin), and the door sub-commands
found through entry points rather than named by the core."""

from __future__ import annotations

import ast
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

# What the wheel is built from (copied, so the build leaves nothing in the checkout).
SOURCES = ("pyproject.toml", "README.md", "impasto", "presets", "gradio_app", "hotfolder", "plugin")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, src / name)
    # The venv's own setuptools (the test extra), no build isolation: nothing is downloaded.
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(work / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (path,) = (work / "dist").glob("impasto-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_wheel_installs_only_impasto_at_the_top(wheel):
    names = wheel.namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"impasto"}
    for door in ("gradio_app", "hotfolder", "plugin"):
        assert f"impasto/{door}/__init__.py" in names
        assert f"impasto/{door}/cli.py" in names
    # Package data still travels with the packages it belongs to.
    assert "impasto/shipped_presets/classic.toml" in names
    assert "impasto/plugin/krita/impasto_krita/dialog.py" in names
    assert "impasto/plugin/gimp/impasto.py" in names


def test_wheel_registers_the_doors_sub_commands(wheel):
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(meta).decode())
    assert dict(entry_points["impasto.commands"]) == {
        "serve": "impasto.gradio_app.cli",
        "watch": "impasto.hotfolder.cli",
        "plugin": "impasto.plugin.cli",
    }
    assert entry_points["console_scripts"]["impasto"] == "impasto.cli:main"


def test_wheel_version_is_the_package_version(wheel):
    import impasto

    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    assert f"Version: {impasto.__version__}" in wheel.read(meta).decode().splitlines()


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports are inside one package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


DOORS = ("gradio_app", "hotfolder", "plugin")


def test_the_core_names_no_door():
    """The core package neither imports nor names a door: the doors find the core, not the
    reverse (sub-commands come from entry points)."""
    for path in (ROOT / "impasto").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for door in DOORS:
            assert f"impasto.{door}" not in text, f"{path.name} names impasto.{door}"
            assert not any(n.split(".")[0] == door for n in _imports(path)), path.name


def test_no_door_imports_the_core_command_line_or_another_door():
    for door in DOORS:
        for path in (ROOT / door).rglob("*.py"):
            imported = _imports(path)
            assert "impasto.cli" not in imported, path
            others = {f"impasto.{d}" for d in DOORS if d != door}
            assert not {n for n in imported if ".".join(n.split(".")[:2]) in others}, path


@pytest.mark.parametrize("command", ["serve", "watch", "plugin"])
def test_door_sub_commands_found_from_the_installed_metadata(command, tmp_path):
    """From another folder (so the checkout is not on sys.path), as users run it."""
    run = subprocess.run(
        [str(Path(sys.executable).with_name("impasto")), command, "--help"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"usage: impasto {command}" in run.stdout
