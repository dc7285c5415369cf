"""`impasto serve`: start the web app, optionally with a public link and a password.

The engine is imported before the server opens, so the first visitor does not wait for
TensorFlow; the server then runs until Ctrl-C or SIGTERM, both of which stop it cleanly (exit 0:
stopping a server is the normal way to end it, not an interruption of work).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import threading

from impasto.engine import memory
from impasto.engine.memory import parse_size
from impasto.errors import ImpastoError
from impasto.limits import MAX_SIZE, WEB_MAX_SIZE, WEB_MAX_STEPS, WEB_MIN_SIZE

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
JOBS_PER_VISITOR = 2  # the web app's default (impasto.gradio_app.app imports Gradio: not here)
UPLOAD_QUOTA_MB = 500

HELP = "start the web app (Gradio)"  # one line in `impasto --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 for your network)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument(
        "--share", action="store_true", help="also ask Gradio for a temporary public link"
    )
    p.add_argument(
        "--auth",
        metavar="USER:PASS",
        default=os.environ.get("IMPASTO_AUTH"),
        help="require this login (or set IMPASTO_AUTH, which keeps it out of `ps`)",
    )
    p.add_argument(
        "--max-size",
        type=int,
        default=WEB_MAX_SIZE,
        help=f"largest output long side visitors may ask for, px (default {WEB_MAX_SIZE})",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=WEB_MAX_STEPS,
        help=f"most steps visitors may ask for (default {WEB_MAX_STEPS})",
    )
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory one job may use, e.g. 8G (default: 80%% of the free memory); bigger "
        "pictures are painted in tiles, and --max-size may go as far as this allows",
    )
    p.add_argument(
        "--queue-size", type=int, default=16, help="jobs that may wait for the engine (default 16)"
    )
    p.add_argument(
        "--jobs-per-visitor",
        type=int,
        default=JOBS_PER_VISITOR,
        help="jobs one visitor (one address) may have waiting or painting "
        f"(default {JOBS_PER_VISITOR})",
    )
    p.add_argument(
        "--upload-quota",
        metavar="MB",
        type=int,
        default=UPLOAD_QUOTA_MB,
        help=f"megabytes one address may upload per hour (default {UPLOAD_QUOTA_MB})",
    )


def run(args: argparse.Namespace) -> int:
    from impasto.gradio_app import sharing

    auth = sharing.parse_auth(args.auth)
    if not 1 <= args.port <= 65535:
        raise ImpastoError(f"--port must be 1 to 65535, not {args.port}")
    if not WEB_MIN_SIZE <= args.max_size <= MAX_SIZE:
        raise ImpastoError(
            f"--max-size must be {WEB_MIN_SIZE} to {MAX_SIZE} px, not {args.max_size}"
        )
    max_memory = None if args.max_memory is None else parse_size(args.max_memory, "--max-memory")
    largest = memory.largest_side(memory.budget(max_memory), "float32")
    if args.max_size > largest:
        raise ImpastoError(
            f"--max-size {args.max_size} px needs more memory than "
            f"{'--max-memory ' + args.max_memory if args.max_memory else 'is free'} "
            f"(at most {largest} px): raise --max-memory or lower --max-size"
        )
    if min(args.max_steps, args.queue_size, args.jobs_per_visitor, args.upload_quota) < 1:
        raise ImpastoError(
            "--max-steps, --queue-size, --jobs-per-visitor and --upload-quota must be 1 or more"
        )
    _check_port_free(args.host, args.port)  # before the engine's few seconds of loading
    for warning in sharing.exposure_warnings(args.host, args.share, auth):
        print(f"impasto: warning: {warning}", file=sys.stderr)

    print("impasto: loading the engine…", file=sys.stderr, flush=True)
    from impasto.gradio_app.app import build_app, close, launch
    from impasto.gradio_app.runner import EngineRunner

    runner = EngineRunner()
    try:
        runner.load()
    except KeyboardInterrupt:
        print("impasto: interrupted while loading the engine", file=sys.stderr)
        return 130
    demo = build_app(
        runner,
        max_size=args.max_size,
        max_steps=args.max_steps,
        queue_size=args.queue_size,
        max_memory=max_memory,
        jobs_per_visitor=args.jobs_per_visitor,
        upload_quota=args.upload_quota * 1024**2,
    )
    try:
        launch(demo, server_name=args.host, server_port=args.port, auth=auth)
    except OSError as exc:  # e.g. another program took the port while the engine loaded
        close(demo)
        raise ImpastoError(f"cannot serve on {args.host}:{args.port}: {exc}") from None

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        print(f"impasto: serving on {demo.local_url} (Ctrl+C to stop)", flush=True)
        if args.share:
            url, reason = sharing.open_public_link(demo)
            if url:
                print(
                    f"impasto: public link: {url} (temporary; stop the app to close it)", flush=True
                )
            else:
                print(
                    f"impasto: no public link: {reason}; still serving on {demo.local_url}",
                    flush=True,
                )
        stop.wait()
    finally:
        print("impasto: stopping", file=sys.stderr, flush=True)
        close(demo)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Fail fast, in one line, if another program holds the port (as the server would find)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ImpastoError(
                    f"port {port} on {host} is in use; pick another with --port"
                ) from None
            raise ImpastoError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
