"""`impasto engine start|stop|status`: the local engine server (impasto.server), which keeps
TensorFlow, the weights and the traced steps warm for `impasto stylize` and the plug-ins.

Exit codes of status: 0 running, 3 not running (as service managers say it).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from impasto import server
from impasto.config import config_file, engine_settings
from impasto.errors import InputError
from impasto.numbers import finite_number_arg

HELP = "keep a warm engine for `impasto stylize` and the plug-ins: start, stop, status"
NOT_RUNNING = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument(
        "--idle",
        type=finite_number_arg,
        metavar="MINUTES",
        help="start: stop after this long without a job, 0 for never (default: idle_minutes "
        f"in {config_file()}, else 10)",
    )
    p.add_argument(
        "--foreground",
        action="store_true",
        help="start: serve in this terminal, logging to stderr, until Ctrl-C",
    )


def run(args: argparse.Namespace) -> int:
    if os.name != "posix":
        raise InputError("the engine server needs Unix sockets (Linux, macOS); commands run alone")
    if args.action == "status":
        status = server.ask("status")
        if status is None:
            print("impasto: no engine server is running")
            return NOT_RUNNING
        print(_describe(status))
        return 0
    if args.action == "stop":
        return _stop()
    idle = engine_settings().idle_minutes if args.idle is None else args.idle
    if idle < 0:
        raise InputError("--idle must be 0 (never) or more minutes")
    if args.foreground:
        return _serve(idle)
    status = server.ask("status")
    if status is not None:
        print(f"impasto: already running: {_describe(status)}")
        return 0
    print("impasto: starting the engine server…", file=sys.stderr, flush=True)
    status = server.spawn(idle, verbose=args.verbose)
    print(f"impasto: ready: {_describe(status)}")
    return 0


def _serve(idle: float) -> int:
    """The server in this process; Ctrl-C and SIGTERM stop it (jobs under way are dropped:
    their clients paint them alone)."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    return server.serve(idle, stopping)


def _stop() -> int:
    status = server.ask("stop")
    if status is None:
        print("impasto: no engine server is running")
        return 0
    deadline = time.monotonic() + 30
    while server.socket_path().exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"impasto: stopped the engine server (pid {status['pid']})")
    return 0


def _describe(status: dict) -> str:
    busy = "painting" if status["running"] else "idle"
    if status["waiting"]:
        busy += f", {status['waiting']} job(s) waiting"
    idle = status["idle_minutes"]
    after = f"stops after {idle:g} min without a job" if idle else "never idles out"
    return (
        f"engine server pid {status['pid']} (impasto {status['version']}) on "
        f"{status['socket']}: {busy}; {status['done']} job(s) done; {after}"
    )
