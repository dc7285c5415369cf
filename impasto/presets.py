"""The preset loader: named recipes of layers and weights, checked before any TensorFlow work.

A preset is a TOML file with a name, a one-line description and a recipe. Shipped presets live in
the package (`presets/` in the source tree); user presets in the user's config folder add to them
or override them by name; a path to a .toml file is used as it is. Every number that decides the
look of a picture comes from here, with per-job overrides on top: the engine has no defaults.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import sys
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path

from impasto.engine.memory import parse_size
from impasto.engine.vgg19 import LAYERS
from impasto.errors import InputError, PresetError
from impasto.limits import DEFAULT_PRESET, MAX_SIZE, MIN_SIZE, PRESERVE_COLOR, STYLE_STRENGTH
from impasto.numbers import checked_number, finite
from impasto.paths import reason, regular_file

log = logging.getLogger(__name__)

CHOICES = {
    "pooling": ("max", "avg"),
    "init": ("content", "noise"),
    "preserve_color": PRESERVE_COLOR,
    # auto: measured on this machine (impasto.engine.precision); the others force that precision.
    "precision": ("auto", "float32", "bfloat16", "float16"),
    "optimizer": ("lbfgs", "adam"),
}
# Keys a file may leave out. Presets written before L-BFGS existed were all tuned for Adam: a
# file without the key keeps it. max_memory: the machine's free memory decides. The further style
# terms are off, and use the style layers when a file sets only their weight.
OPTIONAL = {
    "optimizer": "adam",
    "max_memory": None,
    "w2_weight": 0.0,
    "w2_layers": None,
    "hist_weight": 0.0,
    "hist_layers": None,
}


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how a picture looks. Field docs double as `presets show` help."""

    name: str
    description: str
    content_layers: dict  # layer -> relative weight (normalised to sum 1)
    style_layers: dict  # layer -> relative weight (normalised to sum 1)
    content_weight: float  # weight of the content loss (relative feature error)
    style_weight: float  # weight of the style loss (relative Gram error)
    tv_weight: float  # weight of the total-variation (smoothness) loss
    pooling: str  # "max" or "avg" between VGG19 blocks
    size: int  # default long side of the output, px
    min_size: int  # long side of the coarsest scale, px
    steps: tuple  # steps per scale, coarse to fine; its length is the number of scales
    optimizer: str  # "lbfgs" or "adam"
    learning_rate: float  # Adam's step size; L-BFGS's first step of a scale (image units, 0..1)
    ema_decay: float  # Adam only: the output is this moving average of the iterates
    init: str  # "content" or "noise"
    preserve_color: str  # "none", "luminance" or "histogram"
    precision: str  # "auto" (this machine's faster), "float32", "bfloat16" or "float16"
    style_scale: float  # style image size relative to the output
    # Memory a run may use, bytes ("8G" in a file; None: from the machine's free memory). Not
    # part of the look: above it a step is computed in tiles, exactly (impasto/engine/tiling.py).
    max_memory: int | None = None
    # Further style terms (impasto/engine/terms.py, which names each term's keys), off at weight 0.
    w2_weight: float = 0.0  # weight of the Wasserstein-2 error of the features' mean/covariance
    w2_layers: dict | None = None  # layer -> relative weight (None: the style_layers)
    hist_weight: float = 0.0  # weight of the sliced-histogram error (sorted projections)
    hist_layers: dict | None = None  # layer -> relative weight (None: the style_layers)

    @property
    def total_steps(self) -> int:
        return sum(self.steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d


RECIPE_KEYS = tuple(f.name for f in fields(Recipe))
# style_strength is relative: a factor on the recipe's style terms' weights (or overriding ones).
STYLE_WEIGHTS = ("style_weight", "w2_weight", "hist_weight")
OVERRIDABLE = (*(k for k in RECIPE_KEYS if k not in ("name", "description")), "style_strength")


@dataclass(frozen=True)
class PresetInfo:
    """A preset file found on disk, for listing; error is set when the file does not load."""

    name: str
    path: Path
    origin: str  # "shipped", "user" or "file"
    description: str = ""
    error: str | None = None


def user_preset_dir() -> Path:
    """Where user presets live: %APPDATA%\\impasto\\presets or $XDG_CONFIG_HOME/impasto/presets."""
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "impasto" / "presets"


def shipped_preset_dir() -> Path:
    """presets/ of the source tree, installed as the package data impasto.shipped_presets."""
    source_tree = Path(__file__).resolve().parent.parent / "presets"
    if source_tree.is_dir():  # a checkout or an editable install
        return source_tree
    return Path(str(resources.files("impasto.shipped_presets")))


def _looks_like_path(name: str) -> bool:
    return name.endswith(".toml") or os.sep in name or "/" in name


def find_preset(name: str) -> tuple[Path, str]:
    """The file for a preset name (user folder first) or path, and where it came from."""
    if _looks_like_path(name):
        path = Path(name).expanduser()
        regular_file(path, f"preset file {str(path)!r}", PresetError)
        return path, "file"
    for folder, origin in ((user_preset_dir(), "user"), (shipped_preset_dir(), "shipped")):
        path = folder / f"{name}.toml"
        try:
            if path.is_file():
                return path, origin
        except OSError as exc:  # e.g. a preset folder this user may not enter
            raise PresetError(f"preset {str(path)!r}: {reason(exc)}") from None
    names = sorted({p.name for p in list_presets()})
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise PresetError(f"unknown preset {name!r}{hint} (known: {', '.join(names)})")


def load_library_preset(name: object) -> Recipe:
    """A preset of this machine's library (shipped, or the user's, which win) by name only.

    For doors whose input comes from people who are not the machine's user (the web app): the
    name is matched against listings of the preset folders, never turned into a path, so a path,
    a file name or anything else that is not a known name is refused before any file is opened.
    """
    files = {}
    for folder in (shipped_preset_dir(), user_preset_dir()):
        files.update({path.stem: path for path in folder.glob("*.toml")})
    if isinstance(name, str) and name in files:
        return load_preset_file(files[name])
    shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:59] + "…"
    raise PresetError(f"unknown preset {shown}; choose one of: {', '.join(sorted(files))}")


def load_preset(name: str = DEFAULT_PRESET) -> Recipe:
    """Load and check a preset by name or path. Raises PresetError naming file, key, problem."""
    path, _ = find_preset(name)
    return load_preset_file(path)


def load_preset_file(path: Path) -> Recipe:
    where = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"preset {where}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise PresetError(f"preset {where}: not a text file (TOML is UTF-8 text)") from None
    except OSError as exc:
        raise PresetError(f"preset {where}: cannot read it ({reason(exc)})") from None
    return recipe_from_dict(data, where)


def recipe_from_dict(data: dict, where: str) -> Recipe:
    """A Recipe from a preset file's table or Recipe.to_dict() (sent to the engine server),
    checked like a preset file; `where` (its path) is named in every message."""
    unknown = [k for k in data if k not in RECIPE_KEYS]
    if unknown:
        raise PresetError(f"preset {where}: {_unknown_key_message(unknown[0])}")
    data = {**OPTIONAL, **data}
    missing = [k for k in RECIPE_KEYS if k not in data]
    if missing:
        raise PresetError(f"preset {where}: missing required key(s) {', '.join(missing)}")
    return _check(data, where)


def _unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, RECIPE_KEYS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}{hint}"


def apply_overrides(recipe: Recipe, overrides: dict | None, where: str = "override") -> Recipe:
    """The recipe with per-job overrides on top, checked the same way as a preset file.

    `steps` may be a list (per scale) or a single number: the total, shared out across the
    recipe's scales in the same proportions. `style_strength` multiplies the style terms' weights
    (Gram, W2, histogram: the recipe's, or the ones these overrides set): every door's "more
    style" means the same, whatever terms the preset mixes.
    """
    if not overrides:
        return recipe
    data = recipe.to_dict()
    strength = None
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in OVERRIDABLE:
            raise PresetError(f"{where}: {_unknown_key_message(key)}")
        if key == "style_strength":
            strength = _strength(value, where)
            continue
        if key == "steps" and not isinstance(value, list | tuple):
            value = _share_steps(recipe.steps, _number(value, "steps", where, integer=True))
        data[key] = value
    checked = _check(data, where)
    if strength is None:
        return checked
    return replace(checked, **{k: getattr(checked, k) * strength for k in STYLE_WEIGHTS})


def _strength(value, where: str) -> float:
    low, high = STYLE_STRENGTH
    value = finite(value, f"{where}: style_strength", PresetError)
    if not low <= value <= high:
        raise PresetError(
            f"{where}: style_strength must be from {low:g} to {high:g} (times the preset's "
            f"style weight), not {value!r}"
        )
    return float(value)


def _share_steps(steps: tuple, total: int) -> list[int]:
    """Distribute `total` steps over scales in the proportions of `steps`, at least 1 each."""
    if total < len(steps):
        # Too few steps for every scale: keep only the finest scales, one step each.
        return [0] * (len(steps) - total) + [1] * total
    # One step each first, then the rest in proportion; rounding leftovers go to the finest.
    rest = total - len(steps)
    base = sum(steps)
    shares = [1 + math.floor(s * rest / base) for s in steps]
    shares[-1] += total - sum(shares)
    return shares


def _number(value, key: str, where: str, *, integer: bool = False, positive: bool = False):
    return checked_number(value, f"{where}: {key}", PresetError, integer=integer, positive=positive)


def _layers(value, key: str, where: str) -> dict:
    if not isinstance(value, dict) or not value:
        raise PresetError(
            f"{where}: {key} must be a table of layer = weight, e.g. block4_conv2 = 1"
        )
    out = {}
    for layer, weight in value.items():
        if layer not in LAYERS:
            raise PresetError(
                f"{where}: {key} names unknown layer {layer!r}; valid layers: {', '.join(LAYERS)}"
            )
        out[layer] = _number(weight, f"{key}.{layer}", where)
    total = sum(out.values())
    if total <= 0:
        raise PresetError(f"{where}: {key} weights must not all be 0")
    # Normalised here, once, so content_weight and style_weight alone set the balance.
    return {
        layer: w / total for layer, w in sorted(out.items(), key=lambda kv: LAYERS.index(kv[0]))
    }


def _check(data: dict, where: str) -> Recipe:
    for key, choices in CHOICES.items():
        if data[key] not in choices:
            raise PresetError(
                f"{where}: {key} must be one of {', '.join(choices)}, not {data[key]!r}"
            )
    for key in ("name", "description"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise PresetError(f"{where}: {key} must be a non-empty string")
    steps = data["steps"]
    if not isinstance(steps, list | tuple) or not steps:
        raise PresetError(f"{where}: steps must be a list of steps per scale, e.g. [120, 60, 30]")
    steps = tuple(_number(s, "steps", where, integer=True) for s in steps)
    if sum(steps) == 0:
        raise PresetError(f"{where}: steps must add up to at least 1")
    size = _number(data["size"], "size", where, integer=True, positive=True)
    min_size = _number(data["min_size"], "min_size", where, integer=True, positive=True)
    for key, value in (("size", size), ("min_size", min_size)):
        if value < MIN_SIZE or value > MAX_SIZE:
            raise PresetError(
                f"{where}: {key} must be between {MIN_SIZE} and {MAX_SIZE} px, not {value}"
            )
    # The terms on features (impasto/engine/terms.py; TV alone has nothing to paint towards).
    feature_terms = ("content_weight", *STYLE_WEIGHTS)
    if all(_number(data[k], k, where) == 0 for k in feature_terms):
        raise PresetError(f"{where}: {', '.join(feature_terms)} must not all be 0")
    ema = _number(data["ema_decay"], "ema_decay", where)
    if ema >= 1:
        raise PresetError(f"{where}: ema_decay must be below 1, not {ema!r}")
    return Recipe(
        name=data["name"].strip(),
        description=" ".join(data["description"].split()),
        content_layers=_layers(data["content_layers"], "content_layers", where),
        style_layers=_layers(data["style_layers"], "style_layers", where),
        content_weight=_number(data["content_weight"], "content_weight", where),
        style_weight=_number(data["style_weight"], "style_weight", where),
        tv_weight=_number(data["tv_weight"], "tv_weight", where),
        pooling=data["pooling"],
        size=size,
        min_size=min_size,
        steps=steps,
        optimizer=data["optimizer"],
        learning_rate=_number(data["learning_rate"], "learning_rate", where, positive=True),
        ema_decay=ema,
        init=data["init"],
        preserve_color=data["preserve_color"],
        precision=data["precision"],
        style_scale=_number(data["style_scale"], "style_scale", where, positive=True),
        max_memory=_memory(data.get("max_memory"), where),
        w2_weight=_number(data["w2_weight"], "w2_weight", where),
        w2_layers=_optional_layers(data["w2_layers"], "w2_layers", where),
        hist_weight=_number(data["hist_weight"], "hist_weight", where),
        hist_layers=_optional_layers(data["hist_layers"], "hist_layers", where),
    )


def _optional_layers(value, key: str, where: str) -> dict | None:
    return None if value is None else _layers(value, key, where)


def _memory(value, where: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value, f"{where}: max_memory")
    except InputError as exc:
        raise PresetError(str(exc)) from None


def list_presets() -> list[PresetInfo]:
    """Every preset on disk, user ones overriding shipped ones by name; broken files marked."""
    found: dict[str, PresetInfo] = {}
    for folder, origin in ((shipped_preset_dir(), "shipped"), (user_preset_dir(), "user")):
        try:
            paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
        except OSError as exc:
            log.warning("cannot read the preset folder %s (%s)", folder, reason(exc))
            continue
        for path in paths:
            name = path.stem
            try:
                recipe = load_preset_file(path)
                found[name] = PresetInfo(name, path, origin, recipe.description)
            except PresetError as exc:
                found[name] = PresetInfo(name, path, origin, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - one odd file must not hide the others
                log.warning("preset %s: %s: %s", path, type(exc).__name__, exc)
                error = f"preset {path}: cannot be loaded ({type(exc).__name__}: {exc})"
                found[name] = PresetInfo(name, path, origin, error=error)
    return sorted(found.values(), key=lambda p: p.name)
