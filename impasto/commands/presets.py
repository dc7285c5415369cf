"""`impasto presets list|show|new|gallery`: the named recipes every door offers."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from impasto.atomic import atomic_write
from impasto.engine.memory import format_size
from impasto.errors import PresetError
from impasto.limits import DEFAULT_PRESET
from impasto.numbers import whole_number_arg
from impasto.presets import find_preset, list_presets, load_preset, user_preset_dir

HELP = "list, show, copy and compare the named recipes"  # one line in `impasto --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="name and description of every preset")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    show = sub.add_parser("show", help="a preset's full recipe and where its file is")
    show.add_argument("name")
    show.add_argument(
        "--json", action="store_true", help="machine-readable: origin, path and recipe"
    )
    new = sub.add_parser("new", help="write an editable copy into your preset folder")
    new.add_argument("name")
    new.add_argument("--from", dest="source", default=DEFAULT_PRESET, help="preset to start from")
    new.add_argument("--force", action="store_true", help="overwrite an existing user preset")
    gal = sub.add_parser("gallery", help="a contact sheet: one small picture per preset")
    gal.add_argument("content")
    gal.add_argument("style")
    gal.add_argument("-o", "--output", required=True, help="the sheet: .png .jpg .webp or .tif")
    gal.add_argument(
        "--size", type=whole_number_arg, default=192, help="tile size in px (default 192)"
    )
    gal.add_argument(
        "--steps", type=whole_number_arg, help="steps per tile (default: each preset's own)"
    )
    gal.add_argument("--seed", type=whole_number_arg, default=0)
    gal.add_argument(
        "--tiles", metavar="DIR", help="also save each preset's picture as DIR/<preset>.png"
    )


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "show": _show, "new": _new, "gallery": _gallery}[args.action](args)


def _list(args) -> int:
    presets = list_presets()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "description": p.description,
                        "origin": p.origin,
                        "path": str(p.path),
                        "error": p.error,
                    }
                    for p in presets
                ],
                indent=2,
            )
        )
        return 0
    width = max(len(p.name) for p in presets)
    for p in presets:
        mark = " (user)" if p.origin == "user" else ""
        text = f"BROKEN: {p.error}" if p.error else p.description
        print(f"{p.name:<{width}}  {text}{mark}")
    return 0


def _show(args) -> int:
    path, origin = find_preset(args.name)
    recipe = load_preset(args.name)
    if args.json:
        print(json.dumps({"origin": origin, "path": str(path), "recipe": recipe.to_dict()}))
        return 0
    print(f"# {origin} preset, file: {path}")
    for key, value in recipe.to_dict().items():
        if key == "max_memory":
            if value is None:
                print("# max_memory not set: the machine's free memory decides")
                continue
            value = format_size(value)
        if value is None:  # a further style term's layers: TOML has no null
            print(f"# {key} not set: the style_layers")
            continue
        print(f"{key} = {json.dumps(value)}")
    return 0


def _new(args) -> int:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name):
        raise PresetError(f"preset name {args.name!r}: use letters, digits, '-', '_' and '.' only")
    source, _ = find_preset(args.source)
    load_preset(args.source)  # refuse to copy a broken preset
    target = user_preset_dir() / f"{args.name}.toml"
    if target.exists() and not args.force:
        raise PresetError(f"{target} already exists (use --force to overwrite it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^name\s*=.*$", f'name = "{args.name}"', text, count=1)
    with atomic_write(target, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(
        f"impasto: wrote {target} (a copy of {args.source}); edit it, then use --preset {args.name}"
    )
    return 0


def _gallery(args) -> int:
    from impasto import gallery
    from impasto.images import save_image
    from impasto.outputs import (
        check_not_input,
        check_output_path,
        make_output_folder,
        save_or_recover,
    )

    inputs = [("content image", args.content), ("style image", args.style)]
    check_output_path(args.output, inputs)
    if args.tiles:
        for info in list_presets():
            check_not_input(Path(args.tiles) / f"{info.name}.png", inputs, "tile")
        make_output_folder(args.tiles, "tiles")

    def report(name: str, cached: bool) -> None:
        print(f"impasto: {name}: {'from cache' if cached else 'painted'}", flush=True)

    overrides = {"steps": args.steps} if args.steps else {}
    image = gallery.sheet(
        args.content, args.style, args.size, args.seed, overrides, report, args.tiles
    )
    save_or_recover(lambda path: save_image(image, path), args.output)
    print(f"impasto: gallery written to {args.output}")
    return 0
