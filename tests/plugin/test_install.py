"""`impasto plugin install|uninstall krita|gimp`: files where the editors look, the engine
command recorded, Krita switched on in kritarc (with a backup), and everything undone again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from impasto.cli import main
from impasto.plugin import client, install
from tests.plugin.helpers import IMPASTO

PLUGIN_SRC = Path(install.__file__).resolve().parent
KRITARC = (
    "[General]\ntheme=Krita dark\n\n[python]\nenable_scripter=true\n\n[MainWindow]\nState=AAA\n"
)


@pytest.fixture
def profile(tmp_path):
    krita = tmp_path / "krita"
    kritarc = tmp_path / "config" / "kritarc"
    kritarc.parent.mkdir()
    kritarc.write_text(KRITARC)
    return krita, kritarc


def cli(*args) -> int:
    return main(["plugin", *[str(a) for a in args]])


def test_krita_install_puts_the_plugin_where_krita_looks_and_switches_it_on(profile, capsys):
    krita, kritarc = profile
    assert cli("install", "krita", "--dest", krita, "--kritarc", kritarc) == 0
    out = capsys.readouterr().out

    package = krita / "pykrita" / "impasto_krita"
    desktop = krita / "pykrita" / "impasto_krita.desktop"
    assert (package / "__init__.py").is_file() and (package / "extension.py").is_file()
    assert "X-KDE-Library=impasto_krita" in desktop.read_text()
    # The plug-in carries its own copy of the shared client, byte for byte.
    assert (package / "impasto_client.py").read_bytes() == (PLUGIN_SRC / "client.py").read_bytes()
    assert not list(package.rglob("__pycache__"))
    # The engine command: absolute, runnable, the one of this environment.
    command = client.read_engine_command(package)
    assert Path(command[0]).is_absolute() and os.access(command[0], os.X_OK)
    assert command == [str(IMPASTO)]

    text = kritarc.read_text()
    assert "[python]\nenable_scripter=true\nenable_impasto_krita=true\n" in text
    assert text.replace("enable_impasto_krita=true\n", "") == KRITARC  # nothing else touched
    assert (kritarc.parent / "kritarc.impasto.bak").read_text() == KRITARC
    for shown in (str(package), str(desktop), str(kritarc), str(IMPASTO)):
        assert shown in out


def test_reinstall_updates_in_place_and_keeps_the_original_backup(profile, capsys):
    krita, kritarc = profile
    cli("install", "krita", "--dest", krita, "--kritarc", kritarc)
    stale = krita / "pykrita" / "impasto_krita" / "stale_module.py"
    stale.write_text("# from an older version\n")
    cli("install", "krita", "--dest", krita, "--kritarc", kritarc)
    assert not stale.exists()
    assert kritarc.read_text().count("enable_impasto_krita") == 1
    assert (kritarc.parent / "kritarc.impasto.bak").read_text() == KRITARC
    assert "unchanged" in capsys.readouterr().out


def test_install_switches_on_a_plugin_the_user_had_switched_off(profile):
    krita, kritarc = profile
    kritarc.write_text(KRITARC.replace("[python]\n", "[python]\nenable_impasto_krita=false\n"))
    cli("install", "krita", "--dest", krita, "--kritarc", kritarc)
    text = kritarc.read_text()
    assert "enable_impasto_krita=true" in text and "enable_impasto_krita=false" not in text


def test_install_without_a_kritarc_creates_one(tmp_path):
    kritarc = tmp_path / "config" / "kritarc"
    cli("install", "krita", "--dest", tmp_path / "krita", "--kritarc", kritarc)
    assert kritarc.read_text() == "[python]\nenable_impasto_krita=true\n"


def test_default_folders_follow_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert cli("install", "krita") == 0
    assert (tmp_path / "data" / "krita" / "pykrita" / "impasto_krita" / "__init__.py").is_file()
    assert "enable_impasto_krita=true" in (tmp_path / "config" / "kritarc").read_text()
    assert cli("install", "gimp") == 0
    assert (tmp_path / "config" / "GIMP" / "3.0" / "plug-ins" / "impasto" / "impasto.py").is_file()


def test_krita_uninstall_removes_only_what_install_added(profile, capsys):
    krita, kritarc = profile
    cli("install", "krita", "--dest", krita, "--kritarc", kritarc)
    other = krita / "pykrita" / "someone_elses_plugin.py"
    other.write_text("# not ours\n")
    assert cli("uninstall", "krita", "--dest", krita, "--kritarc", kritarc) == 0
    assert not (krita / "pykrita" / "impasto_krita").exists()
    assert not (krita / "pykrita" / "impasto_krita.desktop").exists()
    assert other.exists()
    assert kritarc.read_text() == KRITARC
    capsys.readouterr()
    assert cli("uninstall", "krita", "--dest", krita, "--kritarc", kritarc) == 0
    assert "not installed" in capsys.readouterr().out


def test_a_foreign_folder_of_the_same_name_is_never_overwritten_or_removed(profile, capsys):
    krita, kritarc = profile
    foreign = krita / "pykrita" / "impasto_krita"
    foreign.mkdir(parents=True)
    (foreign / "__init__.py").write_text("# a different plug-in\n")
    assert cli("install", "krita", "--dest", krita, "--kritarc", kritarc) == 2
    assert "is not an impasto plug-in" in capsys.readouterr().err
    assert cli("uninstall", "krita", "--dest", krita, "--kritarc", kritarc) == 2
    assert (foreign / "__init__.py").read_text() == "# a different plug-in\n"
    assert kritarc.read_text() == KRITARC


def test_gimp_install_and_uninstall(tmp_path, capsys):
    dest = tmp_path / "GIMP" / "3.0"
    assert cli("install", "gimp", "--dest", dest) == 0
    folder = dest / "plug-ins" / "impasto"
    script = folder / "impasto.py"
    assert script.is_file() and os.access(script, os.X_OK)  # GIMP runs it as a program
    assert script.read_text().startswith("#!/usr/bin/env python3")
    assert (folder / "impasto_client.py").read_bytes() == (PLUGIN_SRC / "client.py").read_bytes()
    assert client.read_engine_command(folder) == [str(IMPASTO)]
    assert json.loads((folder / client.SETTINGS_FILE).read_text())["editor"] == "gimp"
    assert str(script) in capsys.readouterr().out
    assert cli("uninstall", "gimp", "--dest", dest) == 0
    assert not folder.exists() and (dest / "plug-ins").is_dir()


def test_kritarc_option_is_refused_for_gimp(tmp_path, capsys):
    assert cli("install", "gimp", "--dest", tmp_path, "--kritarc", tmp_path / "rc") == 2
    assert "--kritarc is for Krita only" in capsys.readouterr().err


def test_the_console_command_installs_too(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.run(
        [str(IMPASTO), "plugin", "install", "krita", "--dest", str(tmp_path / "krita")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("impasto: installed the Krita plug-in")
    assert "Tools > Scripts > Stylise with impasto" in proc.stdout


# -- kritarc editing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "before, value, after",
    [
        ("", "true", "[python]\nk=true\n"),
        ("[a]\nx=1", "true", "[a]\nx=1\n\n[python]\nk=true\n"),
        ("[python]\nk=false\n[b]\nk=1\n", "true", "[python]\nk=true\n[b]\nk=1\n"),
        ("[python]\nj=1\n\n[b]\n", "true", "[python]\nj=1\nk=true\n\n[b]\n"),
        ("[python]\nk=true\nj=1\n", None, "[python]\nj=1\n"),
        ("[b]\nk=true\n", None, "[b]\nk=true\n"),  # another section's key is not ours
        ("[python]\r\nj=1\r\n", "true", "[python]\r\nj=1\r\nk=true\r\n"),
    ],
)
def test_set_ini_key(before, value, after):
    assert install.set_ini_key(before, "python", "k", value) == after


def test_installed_client_runs_without_impasto_with_the_engines_own_vocabulary(tmp_path):
    """The editors' Pythons have neither impasto nor TensorFlow: the installed client imports
    only the standard library and the core modules copied beside it, byte for byte the engine's
    own limits and protocol (no second copy written by hand)."""
    from impasto import limits, protocol

    dest = tmp_path / "GIMP" / "3.0"
    assert cli("install", "gimp", "--dest", dest) == 0
    folder = dest / "plug-ins" / "impasto"
    for name, module in (("impasto_limits.py", limits), ("impasto_protocol.py", protocol)):
        assert (folder / name).read_bytes() == Path(module.__file__).read_bytes()
    line = protocol.line("progress", step=3, total=9, scale=1, scales=2, size=[64, 48],
                         losses={"total": 1.5}, elapsed=1.0, eta=75.0)  # fmt: skip
    code = (
        f"import sys; sys.path.insert(0, {str(folder)!r})\n"
        "import impasto_client as client\n"
        "assert 'impasto' not in sys.modules and 'PIL' not in sys.modules\n"
        "print(client.MIN_SIZE, client.MAX_SIZE, client.DEFAULT_PRESET, client.STYLE_STRENGTH)\n"
        f"print(client.parse_line({line!r}).label())\n"
    )
    # -I -S: no site-packages, no current folder: as bare as an editor's Python.
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        f"{limits.MIN_SIZE} {limits.MAX_SIZE} {limits.DEFAULT_PRESET} {limits.STYLE_STRENGTH}",
        "Scale 1/2 (64\u00d748), step 3/9, 1:15 left",
    ]


def test_the_shared_core_modules_need_only_the_standard_library():
    import ast

    from impasto import limits, protocol

    for module in (limits, protocol):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for name in names:
                    assert name.split(".")[0] in sys.stdlib_module_names, (module, name)
