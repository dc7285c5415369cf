"""Put the editor plug-ins where Krita and GIMP 3 look for them, and take them out again.

Each plug-in gets its own copy of the shared client (plugin/client.py, as impasto_client.py), of
the two standard-library core modules the client shares with the engine (impasto/limits.py and
impasto/protocol.py, as impasto_limits.py and impasto_protocol.py), and a settings file naming
the `impasto` command of the environment the installer ran from: the editors' Pythons cannot
import impasto, so the command path is how a plug-in finds the engine.
Only files this module wrote are ever removed; user files next to them are left alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from impasto import __version__, limits, protocol
from impasto.atomic import atomic_write
from impasto.errors import ImpastoError
from impasto.plugin import client

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
KRITA_PACKAGE = "impasto_krita"  # the pykrita module name; also Krita's enable_<name> key
GIMP_PLUGIN = "impasto"  # plug-ins/impasto/impasto.py
CLIENT_NAME = "impasto_client.py"
# What every plug-in folder gets beside the editor's own files: the client and the core modules
# it imports (see client.py), under the names the client imports them by.
SHARED_FILES = {
    CLIENT_NAME: HERE / "client.py",
    "impasto_limits.py": Path(limits.__file__),
    "impasto_protocol.py": Path(protocol.__file__),
}
BACKUP_SUFFIX = ".impasto.bak"
EDITORS = ("krita", "gimp")


@dataclass
class Report:
    """What an install or uninstall did, for the CLI to print."""

    editor: str
    action: str
    lines: list = field(default_factory=list)  # (label, text) pairs
    hints: list = field(default_factory=list)

    def add(self, label: str, text: str) -> None:
        self.lines.append((label, text))


# ----------------------------------------------------------------------------------------------
# Where things go


def _home() -> Path:
    return Path.home()


def default_krita_dir() -> Path:
    """Krita's per-user resource folder, the one holding pykrita/."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming") / "krita"
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / "krita"
    return Path(os.environ.get("XDG_DATA_HOME") or _home() / ".local" / "share") / "krita"


def default_kritarc() -> Path:
    """Krita's settings file, where Python plug-ins are switched on."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or _home() / "AppData" / "Local") / "kritarc"
    if sys.platform == "darwin":
        return _home() / "Library" / "Preferences" / "kritarc"
    return Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config") / "kritarc"


def default_gimp_dir() -> Path:
    """GIMP 3's per-user profile folder, the one holding plug-ins/."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming") / "GIMP" / "3.0"
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / "GIMP" / "3.0"
    return Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config") / "GIMP" / "3.0"


def engine_command() -> list:
    """The absolute command that runs this impasto, recorded into the plug-in's settings.

    Preferred: the `impasto` console script of the running interpreter's environment (a venv's
    bin/), which keeps working however the editor is started, with whatever PATH it has.
    """
    candidates = []
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.stem == "impasto":
        candidates.append(argv0)
    scripts = Path(sys.executable).parent
    candidates += [scripts / "impasto", scripts / "impasto.exe"]
    found = shutil.which("impasto")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return [str(path.absolute())]
    # No console script (e.g. running from a checkout): the interpreter and the module.
    return [str(Path(sys.executable).absolute()), "-m", "impasto.cli"]


def write_settings(plugin_dir, command: list, editor: str) -> Path:
    """Record the engine command in the plug-in's folder (atomically: the editor may be reading;
    client.read_engine_command reads it)."""
    path = Path(plugin_dir) / client.SETTINGS_FILE
    data = {"command": [str(c) for c in command], "editor": editor, "impasto": __version__}
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# Copying


def _copy_tree(source: Path, target: Path) -> None:
    """Replace target with a copy of source, built beside it first so a half-copied plug-in
    never sits where the editor loads it."""
    staging = target.with_name(target.name + ".impasto-new")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def _copy_file(source: Path, target: Path, mode: int | None = None) -> None:
    with open(source, "rb") as src, atomic_write(target, permissions=mode) as fh:
        shutil.copyfileobj(src, fh)


def _copy_shared(folder: Path) -> None:
    for name, source in SHARED_FILES.items():
        _copy_file(source, folder / name, mode=0o644)


def _is_ours(folder: Path) -> bool:
    """A folder we installed: it holds our settings file or our client copy."""
    return (folder / client.SETTINGS_FILE).is_file() or (folder / CLIENT_NAME).is_file()


# ----------------------------------------------------------------------------------------------
# kritarc


def set_ini_key(text: str, section: str, key: str, value: str | None) -> str:
    """text (a KConfig/INI file) with section's key set to value, or removed when value is None.

    Edited line by line rather than through configparser, which would rewrite the whole file
    (case, comments, Krita's own escaping) on the way.
    """
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    header = f"[{section}]"
    start = next((i for i, ln in enumerate(lines) if ln.strip() == header), None)
    entry = f"{key}={value}{newline}"
    if start is None:
        if value is None:
            return "".join(lines)
        if lines and lines[-1].strip():
            lines.append(newline)
        return "".join([*lines, header + newline, entry])
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines)
    )
    for i in range(start + 1, end):
        name = lines[i].split("=", 1)[0].strip()
        if "=" in lines[i] and name == key:
            if value is None:
                del lines[i]
            else:
                lines[i] = entry
            return "".join(lines)
    if value is not None:
        # After the section's last entry, before the blank line that separates sections.
        at = end
        while at > start + 1 and not lines[at - 1].strip():
            at -= 1
        lines.insert(at, entry)
    return "".join(lines)


def _edit_kritarc(kritarc: Path, value: str | None) -> str:
    """Set or remove our enable key; returns what happened, for the report."""
    key = f"enable_{KRITA_PACKAGE}"
    old = kritarc.read_text(encoding="utf-8") if kritarc.is_file() else ""
    new = set_ini_key(old, "python", key, value)
    if new == old:
        return "unchanged"
    backup = None
    if kritarc.is_file():
        backup = kritarc.with_name(kritarc.name + BACKUP_SUFFIX)
        shutil.copy2(kritarc, backup)
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(kritarc, "w", encoding="utf-8") as fh:
        fh.write(new)
    return f"backup: {backup}" if backup else "new file"


# ----------------------------------------------------------------------------------------------
# Krita


def install_krita(dest: Path | None = None, kritarc: Path | None = None) -> Report:
    dest = Path(dest) if dest else default_krita_dir()
    kritarc = Path(kritarc) if kritarc else default_kritarc()
    pykrita = dest / "pykrita"
    target = pykrita / KRITA_PACKAGE
    if target.exists() and not _is_ours(target):
        raise ImpastoError(f"{target} exists and is not an impasto plug-in: move it away first")
    pykrita.mkdir(parents=True, exist_ok=True)
    _copy_tree(HERE / "krita" / KRITA_PACKAGE, target)
    _copy_shared(target)
    command = engine_command()
    write_settings(target, command, "krita")
    desktop = pykrita / f"{KRITA_PACKAGE}.desktop"
    _copy_file(HERE / "krita" / f"{KRITA_PACKAGE}.desktop", desktop)
    enabled = _edit_kritarc(kritarc, "true")

    report = Report("krita", "installed")
    report.add("plug-in", str(target))
    report.add("menu entry", str(desktop))
    report.add("engine", " ".join(command))
    report.add("enabled in", f"{kritarc} [python] enable_{KRITA_PACKAGE}=true ({enabled})")
    report.hints += [
        "Quit Krita before installing (it rewrites kritarc when it exits), then start it and use",
        "Tools > Scripts > Stylise with impasto... If the entry is missing, tick 'impasto style",
        "transfer' in Settings > Configure Krita > Python Plugin Manager and restart Krita.",
    ]
    return report


def uninstall_krita(dest: Path | None = None, kritarc: Path | None = None) -> Report:
    dest = Path(dest) if dest else default_krita_dir()
    kritarc = Path(kritarc) if kritarc else default_kritarc()
    pykrita = dest / "pykrita"
    target = pykrita / KRITA_PACKAGE
    desktop = pykrita / f"{KRITA_PACKAGE}.desktop"
    report = Report("krita", "uninstalled")
    if target.exists():
        if not _is_ours(target):
            raise ImpastoError(f"{target} is not an impasto plug-in: not removing it")
        shutil.rmtree(target)
        report.add("removed", str(target))
    if desktop.is_file():
        desktop.unlink()
        report.add("removed", str(desktop))
    if kritarc.is_file():
        state = _edit_kritarc(kritarc, None)
        if state != "unchanged":
            report.add("disabled in", f"{kritarc} ({state})")
    if not report.lines:
        report.action = "not installed"
        report.add("looked in", str(pykrita))
    return report


# ----------------------------------------------------------------------------------------------
# GIMP 3


def install_gimp(dest: Path | None = None) -> Report:
    dest = Path(dest) if dest else default_gimp_dir()
    target = dest / "plug-ins" / GIMP_PLUGIN
    if target.exists() and not _is_ours(target):
        raise ImpastoError(f"{target} exists and is not an impasto plug-in: move it away first")
    staging = target.with_name(target.name + ".impasto-new")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    # GIMP runs plug-ins/<name>/<name>.py as a program: it must be executable.
    _copy_file(HERE / "gimp" / f"{GIMP_PLUGIN}.py", staging / f"{GIMP_PLUGIN}.py", mode=0o755)
    _copy_shared(staging)
    command = engine_command()
    write_settings(staging, command, "gimp")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)

    report = Report("gimp", "installed")
    report.add("plug-in", str(target / f"{GIMP_PLUGIN}.py"))
    report.add("engine", " ".join(command))
    report.hints += [
        "Restart GIMP 3, then use Filters > Artistic > Stylise with impasto... on a layer.",
    ]
    return report


def uninstall_gimp(dest: Path | None = None) -> Report:
    dest = Path(dest) if dest else default_gimp_dir()
    target = dest / "plug-ins" / GIMP_PLUGIN
    report = Report("gimp", "uninstalled")
    if target.exists():
        if not _is_ours(target):
            raise ImpastoError(f"{target} is not an impasto plug-in: not removing it")
        shutil.rmtree(target)
        report.add("removed", str(target))
    else:
        report.action = "not installed"
        report.add("looked in", str(target.parent))
    return report
