"""hotfolder.toml: the daemon's timing knobs and one [routes.NAME] table per inbox sub-folder.

Everything is checked at start, before TensorFlow loads, so a typo in the config, an unknown
preset or a missing style image is one clear line on the terminal instead of a failed file an
hour later. The same checks run again when a held route is retried (see daemon.py).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from impasto.engine import memory
from impasto.errors import ImpastoError, InputError, PresetError
from impasto.hotfolder.layout import STATE_DIR, Layout
from impasto.images import OUTPUT_FORMATS, load_image
from impasto.limits import DEFAULT_PRESET, MAX_SIZE, MIN_SIZE
from impasto.numbers import checked_number
from impasto.paths import reason
from impasto.presets import OVERRIDABLE, apply_overrides, load_preset

CONFIG_NAME = "hotfolder.toml"
# Route keys that are not recipe overrides; every other key of a route must be in OVERRIDABLE.
ROUTE_KEYS = ("styles", "preset", "format", "save_every", "seed", "size")
# Output formats by the word a user writes in `format`; "same" keeps the input's extension.
FORMATS = {ext.lstrip("."): ext for ext in OUTPUT_FORMATS} | {"same": "same"}
ROUTE_NAME = re.compile(r"^[^./\\][^/\\]*$")


class ConfigError(ImpastoError):
    """hotfolder.toml (or the quick-start options) cannot be used as they are."""


@dataclass(frozen=True)
class DaemonSettings:
    """How the daemon watches and paces itself; the defaults suit a local disk."""

    settle_seconds: float = 2.0  # a file must keep its size and mtime this long to be taken
    closed_settle_seconds: float = 0.5  # ... or this long after the writer closed it (inotify)
    rescan_seconds: float = 30.0  # full listing of the inbox, for events a share never sends
    polling: bool = False  # watchdog's polling observer instead of inotify (network shares)
    max_file_mb: float = 200.0  # bigger inputs go to failed/ without being read
    checkpoint_every: int = 25  # steps between checkpoints of the running job
    max_crashes: int = 3  # a job the daemon died on this often goes to failed/
    log_file: str = "hotfolder.log"  # relative to ROOT
    state_dir: str = STATE_DIR  # journal, checkpoints, lock; relative to ROOT, or absolute
    # Memory one job may use, bytes ("8G" in the file; None: the machine's free memory less a
    # margin); bigger pictures are painted in tiles. A route's own max_memory wins.
    max_memory: int | None = None
    cluster: str = ""  # a Ray cluster's address, or "local"; empty: paint in this process
    workers: int = 0  # engine workers on the cluster (0: one per worker_threads CPUs or GPU)
    worker_threads: int = 1  # TensorFlow threads of each cluster worker


DAEMON_KEYS = tuple(DaemonSettings.__dataclass_fields__)


@dataclass(frozen=True)
class Route:
    """One inbox sub-folder and how its files are painted."""

    name: str
    styles: tuple[tuple[str, float], ...]  # (absolute path, blend weight)
    preset: str = DEFAULT_PRESET
    format: str = "png"  # a key of FORMATS
    save_every: int = 0  # evolution snapshot every N steps (0: none)
    seed: int = 0
    size: int | None = None  # long side of the output; None: the preset's
    overrides: dict = field(default_factory=dict)

    def output_suffix(self, input_name: str) -> str:
        """The extension of the output for an input file name."""
        if self.format != "same":
            return FORMATS[self.format]
        ext = Path(input_name).suffix.lower()
        return ext if ext in OUTPUT_FORMATS else ".png"


@dataclass(frozen=True)
class Config:
    root: Path
    path: Path | None  # None for the quick start (--style) without a file
    daemon: DaemonSettings
    routes: dict[str, Route]


def _where(path: Path | None, table: str = "") -> str:
    name = str(path) if path is not None else "command line"
    return f"{name} [{table}]" if table else name


def _unknown(key: str, known: tuple, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown key {key!r}{hint}")


def _number(value, key: str, where: str, *, integer: bool = False, minimum: float = 0.0):
    return checked_number(value, f"{where}: {key}", ConfigError, integer=integer, minimum=minimum)


def parse_daemon(data: dict, where: str) -> DaemonSettings:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [daemon] must be a table")
    for key in data:
        if key not in DAEMON_KEYS:
            raise _unknown(key, DAEMON_KEYS, where)
    values = {}
    for key, value in data.items():
        if key == "polling":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: polling must be true or false, not {value!r}")
            values[key] = value
        elif key in ("log_file", "state_dir"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}: {key} must be a path")
            values[key] = value
        elif key == "max_memory":
            try:
                values[key] = memory.parse_size(value, f"{where}: max_memory")
            except InputError as exc:
                raise ConfigError(str(exc)) from None
        elif key == "cluster":
            if not isinstance(value, str):
                raise ConfigError(
                    f'{where}: cluster must be an address such as "head-node:6379", or "local"'
                )
            values[key] = value.strip()
        elif key in ("checkpoint_every", "max_crashes", "worker_threads"):
            values[key] = _number(value, key, where, integer=True, minimum=1)
        elif key == "workers":
            values[key] = _number(value, key, where, integer=True, minimum=0)
        else:
            values[key] = _number(value, key, where, minimum=0.01 if "seconds" in key else 0.001)
    return DaemonSettings(**values)


def _styles(value, base: Path, where: str) -> tuple[tuple[str, float], ...]:
    example = 'styles = ["starry.jpg"] or styles = [{ path = "a.jpg", weight = 0.7 }, ...]'
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: styles must list at least one style image, e.g. {example}")
    styles = []
    for item in value:
        if isinstance(item, str):
            path, weight = item, 1.0
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            extra = set(item) - {"path", "weight"}
            if extra:
                raise ConfigError(f"{where}: a style has unknown key {sorted(extra)[0]!r}")
            path = item["path"]
            weight = _number(item.get("weight", 1.0), "style weight", where)
        else:
            raise ConfigError(
                f"{where}: each style must be a path or {{ path = ..., weight = ... }}"
            )
        styles.append((str((base / Path(path).expanduser()).resolve()), weight))
    if sum(w for _, w in styles) <= 0:
        raise ConfigError(f"{where}: style weights must not all be 0")
    return tuple(styles)


def parse_route(name: str, data: dict, base: Path, where: str) -> Route:
    """A Route from its TOML table; shape and types only (check_route opens the files)."""
    if not ROUTE_NAME.match(name):
        raise ConfigError(f"{where}: {name!r} cannot be a folder name (no '/', no leading '.')")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a table")
    for key in data:
        if key not in ROUTE_KEYS and key not in OVERRIDABLE:
            raise _unknown(key, ROUTE_KEYS + OVERRIDABLE, where)
    if "styles" not in data:
        raise ConfigError(f'{where}: no styles: add styles = ["path/to/artwork.jpg"]')
    preset = data.get("preset", DEFAULT_PRESET)
    if not isinstance(preset, str) or not preset.strip():
        raise ConfigError(f"{where}: preset must be a preset name, e.g. {DEFAULT_PRESET!r}")
    fmt = str(data.get("format", "png")).lower().lstrip(".")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    size = data.get("size")
    if size is not None:
        size = _number(size, "size", where, integer=True, minimum=MIN_SIZE)
        if size > MAX_SIZE:
            raise ConfigError(f"{where}: size must be {MAX_SIZE} or less, not {size}")
    if preset.endswith(".toml") and not os.path.isabs(preset):
        preset = str((base / preset).resolve())
    return Route(
        name=name,
        styles=_styles(data["styles"], base, where),
        preset=preset,
        format=fmt,
        save_every=_number(data.get("save_every", 0), "save_every", where, integer=True),
        seed=_number(data.get("seed", 0), "seed", where, integer=True),
        size=size,
        overrides={k: v for k, v in data.items() if k in OVERRIDABLE and k != "size"},
    )


def check_route(route: Route, where: str, max_memory: int | None = None) -> None:
    """Load the preset, apply the overrides and open every style image: one ImpastoError, with
    `where` in front, for the first problem. A size the memory budget (the route's max_memory,
    else the daemon's, else the machine's) cannot paint even in tiles is one too."""
    try:
        recipe = apply_overrides(load_preset(route.preset), route.overrides, where="overrides")
        for path, _ in route.styles:
            load_image(path, "style")
    except (PresetError, InputError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    budget = memory.budget(recipe.max_memory, max_memory)  # as the engine will resolve it
    size = route.size or recipe.size
    largest = memory.largest_side(budget, "float32")
    if size > largest:
        raise ConfigError(
            f"{where}: size {size} px needs more memory than {memory.format_size(budget)} "
            f"(at most {largest} px on a square picture); set max_memory higher or size lower"
        )


def load_config(root: Path, path: Path | None = None) -> Config:
    """Read and check ROOT/hotfolder.toml (or `path`); raise ConfigError on the first problem.

    Relative style and preset paths are relative to the config file's folder.
    """
    path = Path(path) if path is not None else root / CONFIG_NAME
    where = _where(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found; run `impasto watch {root} --init` to write an example, "
            "or give --style for a one-route quick start"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({reason(exc)})") from None
    for key in data:
        if key not in ("daemon", "routes"):
            raise _unknown(key, ("daemon", "routes"), where)
    daemon = parse_daemon(data.get("daemon", {}), _where(path, "daemon"))
    tables = data.get("routes", {})
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{where}: no routes; add a [routes.NAME] table with styles = [...]")
    base = path.resolve().parent
    routes = {
        name: parse_route(name, table, base, _where(path, f"routes.{name}"))
        for name, table in tables.items()
    }
    config = Config(root=root, path=path, daemon=daemon, routes=routes)
    check_config(config)
    return config


def state_dir_of(root: Path, path: Path | None = None) -> str:
    """[daemon] state_dir from the config file, without checking the routes (for --status)."""
    path = Path(path) if path is not None else root / CONFIG_NAME
    try:
        with open(path, "rb") as fh:
            daemon = tomllib.load(fh).get("daemon", {})
        return parse_daemon(daemon, _where(path, "daemon")).state_dir
    except (OSError, tomllib.TOMLDecodeError, ConfigError, AttributeError):
        return STATE_DIR


def check_config(config: Config) -> None:
    for name, route in config.routes.items():
        check_route(route, _where(config.path, f"routes.{name}"), config.daemon.max_memory)
    check_folders(config)


def check_folders(config: Config) -> None:
    """Refuse a layout in which the daemon would read what it writes: an outbox, processed,
    failed or evolution folder, the state folder or the log inside an inbox (its own outputs
    would be taken as photos, and an output could replace an input), an inbox inside any of
    those, or a style image inside an inbox (it would be painted and moved away). Folders are
    compared as the disk resolves them, so symbolic links cannot hide an overlap."""
    layout = Layout(config.root, config.daemon.state_dir)
    inboxes = {f"inbox/{r}": _real(layout.folder("inbox", r)) for r in config.routes}
    written = {
        f"{kind}/{r}": _real(layout.folder(kind, r))
        for kind in ("outbox", "processed", "failed", "evolution")
        for r in config.routes
    }
    written["the state folder"] = _real(layout.state)
    written["the log file"] = _real(layout.root / config.daemon.log_file)
    for route in config.routes.values():
        for style, _ in route.styles:
            written[f"style image {style!r} of [routes.{route.name}]"] = _real(Path(style))
    where = _where(config.path)
    for inbox_name, inbox in inboxes.items():
        for name, path in written.items():
            if path.is_relative_to(inbox):
                raise ConfigError(
                    f"{where}: {name} ({path}) lies inside {inbox_name} ({inbox}): the daemon "
                    "would take it as a photo to paint; keep inboxes apart from everything else"
                )
            if inbox.is_relative_to(path):
                raise ConfigError(
                    f"{where}: {inbox_name} ({inbox}) lies inside {name} ({path}): the daemon "
                    "would write where it reads; keep inboxes apart from everything else"
                )


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def quick_start_config(
    root: Path,
    styles: list[str],
    preset: str = DEFAULT_PRESET,
    overrides: dict | None = None,
    route_name: str = "default",
) -> Config:
    """One route called `default` from command-line options, for trying the daemon without a
    config file."""
    table: dict = {"styles": styles, "preset": preset, **(overrides or {})}
    route = parse_route(route_name, table, Path.cwd(), _where(None, f"routes.{route_name}"))
    config = Config(root=root, path=None, daemon=DaemonSettings(), routes={route_name: route})
    check_config(config)
    return config


EXAMPLE = """\
# impasto hot folder: drop photos into inbox/<route>/, find the paintings in outbox/<route>/.
# Inputs that were painted move to processed/<route>/, inputs that could not be painted to
# failed/<route>/ with a <name>.error.txt saying why. Restart the daemon after editing this file.

[daemon]
settle_seconds = 2.0        # a file is taken once its size and mtime held still this long
closed_settle_seconds = 0.5 # ... or this long after its writer closed it (local disks only)
rescan_seconds = 30         # full listing of the inbox, catches events a network share misses
polling = false             # true on network shares (same as --polling)
max_file_mb = 200           # larger inputs go to failed/ unread
checkpoint_every = 25       # steps between checkpoints: a crash loses at most this much work
max_crashes = 3             # a file the daemon died on this many times goes to failed/
log_file = "hotfolder.log"  # relative to this folder
# max_memory = "8G"         # memory one job may use (default: 80% of the free memory); bigger
                            # pictures are painted in tiles, with the same result, more slowly
# On a network share, keep the journal and checkpoints on a local disk (SQLite needs one):
# state_dir = "/var/lib/impasto/studio"  # default: .hotfolder in this folder
# Paint on a Ray cluster (pip install 'impasto[cluster]'; same as --cluster):
# cluster = "head-node:6379"  # or "auto" (this machine joined one), or "local"
# workers = 0                 # engine workers; 0: one per worker_threads CPUs of the cluster
# worker_threads = 1          # TensorFlow threads per worker

# One table per sub-folder of inbox/. Paths are relative to this file.
[routes.{name}]
styles = {styles}
# Several styles with blend weights:
# styles = [{{ path = "styles/starry.jpg", weight = 0.7 }},
#           {{ path = "styles/wave.jpg", weight = 0.3 }}]
preset = "{preset}"          # `impasto presets list` shows them all
format = "png"              # png, jpg, jpeg, webp, tif, tiff, or "same" as the input
# size = 768                # long side of the output in px (default: the preset's)
# steps = 150               # total optimisation steps (default: the preset's)
# preserve_color = "luminance"  # none, luminance or histogram: keep the photo's colours
# style_weight = 20.0       # any other recipe key of the preset can be overridden here too
# seed = 0
# save_every = 20           # evolution snapshots every 20 steps in evolution/<route>/<name>/
"""


def example_config(styles: list[str] | None = None, preset: str = DEFAULT_PRESET) -> str:
    """The commented config that --init writes; with --style it is ready to run."""
    paths = [str(Path(s).expanduser().resolve()) for s in styles] if styles else []
    text = json.dumps(paths) if paths else '["styles/your-artwork.jpg"]'  # JSON strings are TOML
    return EXAMPLE.format(name="default", styles=text, preset=preset)
