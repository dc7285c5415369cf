"""`impasto watch ROOT`: the hot-folder daemon's command line.

    impasto watch ROOT --init [--style ART ...]   write the folder layout and a commented config
    impasto watch ROOT                            run with ROOT/hotfolder.toml
    impasto watch ROOT --style ART [--preset P]   one route, inbox/default/, no config file
    impasto watch ROOT --status [--json]          what the daemon is doing

Exit codes: 0 stopped cleanly (SIGTERM and Ctrl-C are the normal way to stop a daemon, so they
give 0, which service managers count as success), 2 a config or usage error, 130 a second
Ctrl-C (stop at once, without waiting for the current step).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from impasto.errors import ImpastoError
from impasto.hotfolder.config import (
    CONFIG_NAME,
    Config,
    ConfigError,
    example_config,
    load_config,
    quick_start_config,
    state_dir_of,
)
from impasto.hotfolder.layout import Layout, write_text_atomic
from impasto.limits import DEFAULT_PRESET
from impasto.numbers import finite_number_arg, whole_number_arg

HELP = "run the hot-folder daemon"  # one line in `impasto --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", metavar="ROOT", help="the hot folder (inbox/, outbox/, ... live here)")
    p.add_argument("--config", metavar="FILE", help=f"config file (default: ROOT/{CONFIG_NAME})")
    p.add_argument("--init", action="store_true", help="create the folders and an example config")
    p.add_argument("--status", action="store_true", help="show the queue, the current job, counts")
    p.add_argument("--json", action="store_true", help="with --status: print JSON")
    p.add_argument(
        "--polling", action="store_true", help="poll instead of file events (network shares)"
    )
    p.add_argument("--once", action="store_true", help="paint what is in the inbox, then exit")
    quick = p.add_argument_group("quick start without a config (route 'default')")
    quick.add_argument("--style", action="append", metavar="IMAGE", help="style image (repeatable)")
    quick.add_argument("--preset", help=f"preset name (default: {DEFAULT_PRESET})")
    quick.add_argument("--size", type=whole_number_arg, help="long side of the outputs in px")
    quick.add_argument("--steps", type=whole_number_arg, help="optimisation steps per picture")
    quick.add_argument("--format", help="output format: png, jpg, webp, tif or same")
    cluster = p.add_argument_group("a Ray cluster (override [daemon] in the config)")
    cluster.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="paint on the Ray cluster at ADDRESS (HOST:PORT, auto, or local to start one here)",
    )
    cluster.add_argument(
        "--workers", type=whole_number_arg, help="engine workers (default: one per CPU or GPU)"
    )
    cluster.add_argument(
        "--worker-threads", type=whole_number_arg, help="TensorFlow threads per worker (default 1)"
    )
    timing = p.add_argument_group("timing (override [daemon] in the config)")
    timing.add_argument(
        "--settle",
        type=finite_number_arg,
        metavar="SECONDS",
        help="how long a file must hold still",
    )
    timing.add_argument(
        "--rescan", type=finite_number_arg, metavar="SECONDS", help="full inbox listing period"
    )


def run(args: argparse.Namespace) -> int:
    root = Path(args.root).expanduser().absolute()
    if args.status:
        config_file = Path(args.config).expanduser() if args.config else None
        return _status(Layout(root, state_dir_of(root, config_file)), args.json)
    if args.init:
        return _init(root, args)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder; create it with `impasto watch {root} --init`")
    config = build_config(root, args)
    if config.daemon.cluster:
        from impasto.cluster.connect import require_ray

        require_ray()  # one line now, before the daemon starts

    from impasto.hotfolder.daemon import Daemon

    Layout(root, config.daemon.state_dir).ensure(config.routes)
    print(
        f"impasto: watching {root / 'inbox'} (routes: {', '.join(config.routes)}); "
        f"log in {root / config.daemon.log_file}; Ctrl-C to stop",
        flush=True,
    )
    try:
        return Daemon(config, once=args.once).run()
    except KeyboardInterrupt:  # a second Ctrl-C: the journal lets the next start pick up
        print("impasto: stopped at once; the interrupted job resumes next time", file=sys.stderr)
        return 130


def build_config(root: Path, args: argparse.Namespace) -> Config:
    """The config from the file or the quick-start options, with command-line timing on top."""
    config_file = Path(args.config).expanduser() if args.config else root / CONFIG_NAME
    quick = {"size": args.size, "steps": args.steps, "format": args.format}
    quick = {k: v for k, v in quick.items() if v is not None}
    if args.style:
        if args.config or config_file.exists():
            raise ConfigError(
                f"--style makes a one-route config, but {config_file} exists: "
                "put the style in the config, or move the config away"
            )
        config = quick_start_config(root, args.style, args.preset or DEFAULT_PRESET, quick)
    else:
        if quick or args.preset:
            raise ConfigError(
                "--preset, --size, --steps and --format go with --style; "
                f"otherwise set them per route in {CONFIG_NAME}"
            )
        config = load_config(root, config_file)
    daemon = config.daemon
    changes = {}
    if args.polling:
        changes["polling"] = True
    for flag, key in (("settle", "settle_seconds"), ("rescan", "rescan_seconds")):
        value = getattr(args, flag)
        if value is not None:
            if not value > 0:
                raise ConfigError(f"--{flag} must be more than 0 seconds, not {value:g}")
            changes[key] = value
    for flag in ("cluster", "workers", "worker_threads"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    if changes.get("workers", 0) < 0:
        raise ConfigError("--workers must be 0 (one per CPU of the cluster) or more")
    if changes.get("worker_threads", 1) < 1:
        raise ConfigError("--worker-threads must be 1 or more")
    if args.settle is not None:
        changes["closed_settle_seconds"] = min(daemon.closed_settle_seconds, args.settle)
    return replace(config, daemon=replace(daemon, **changes)) if changes else config


def _init(root: Path, args: argparse.Namespace) -> int:
    config_file = Path(args.config).expanduser() if args.config else root / CONFIG_NAME
    root.mkdir(parents=True, exist_ok=True)
    if config_file.exists():
        print(f"impasto: {config_file} exists; left as it is")
        config = load_config(root, config_file)
        routes, state_dir = list(config.routes), config.daemon.state_dir
    else:
        text = example_config(args.style, args.preset or DEFAULT_PRESET)
        write_text_atomic(config_file, text)
        print(f"impasto: wrote {config_file} (edit it, then run `impasto watch {root}`)")
        routes, state_dir = ["default"], state_dir_of(root, config_file)
    Layout(root, state_dir).ensure(routes)
    for route in routes:
        print(f"impasto: drop files into {root / 'inbox' / route}")
    return 0


def _status(layout: Layout, as_json: bool) -> int:
    from impasto.hotfolder.status import format_status, gather

    info = gather(layout)
    print(json.dumps(info, indent=2) if as_json else format_status(info))
    return 0


__all__ = ["add_arguments", "run", "build_config", "ImpastoError"]
