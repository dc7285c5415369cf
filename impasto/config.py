"""The user's settings for the `impasto` command: $XDG_CONFIG_HOME/impasto/config.toml
(%APPDATA%\\impasto\\config.toml on Windows). Everything has a default, so the file is optional:

    [engine]
    autostart = false    # may `impasto stylize` start the local engine server when none runs?
    idle_minutes = 10    # the server stops after this long without a job (0: never)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from impasto.errors import InputError
from impasto.numbers import checked_number
from impasto.paths import config_dir, reason


@dataclass(frozen=True)
class EngineSettings:
    autostart: bool = False
    idle_minutes: float = 10.0


def config_file() -> Path:
    return config_dir() / "config.toml"


def engine_settings(path: Path | None = None) -> EngineSettings:
    """The [engine] table, checked; the defaults when the file is missing. A broken file is an
    InputError naming the file, the key and the problem."""
    path = config_file() if path is None else path
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return EngineSettings()
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"settings {str(path)!r}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = reason(exc) if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"settings {str(path)!r}: cannot read it ({why})") from None
    table = data.get("engine", {})
    where = f"settings {str(path)!r}, [engine]"
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table")
    for key in table:
        if key not in ("autostart", "idle_minutes"):
            raise InputError(f"{where}: unknown key {key!r} (known: autostart, idle_minutes)")
    autostart = table.get("autostart", False)
    if not isinstance(autostart, bool):
        raise InputError(f"{where}: autostart must be true or false, not {autostart!r}")
    idle = checked_number(table.get("idle_minutes", 10.0), f"{where}: idle_minutes")
    return EngineSettings(autostart=autostart, idle_minutes=float(idle))
