"""Joining a Ray cluster, or starting one on this machine for `--cluster local`.

A local start is private to this process: a fresh short temporary folder (Unix socket paths must
stay under about 107 bytes, and Ray nests several folders under RAY_TMPDIR), token
authentication with a random token, no dashboard. ray.shutdown() then stops exactly the
processes it started; a cluster we only joined is left running. Nothing here ever runs
`ray stop`, which would stop every Ray process on the machine, other people's included.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading

from impasto.errors import ImpastoError

log = logging.getLogger(__name__)

INSTALL = "pip install 'impasto[cluster]'"
LOCAL = "local"
# RAY_TMPDIR longer than this leaves Ray's socket paths over the kernel's limit.
MAX_TMPDIR = 38


class ClusterError(ImpastoError):
    """The cluster cannot be used: Ray is missing, unreachable, or too small for the pool."""


def import_ray():
    """The ray module, or a ClusterError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(
            f"painting on a cluster needs Ray, which is not installed: {INSTALL}"
        ) from None
    return ray


def require_ray() -> None:
    """A ClusterError now if Ray is missing, without importing it (Ray reads its
    authentication settings when it is imported, so a local start sets them first)."""
    if importlib.util.find_spec("ray") is None:
        import_ray()


def check_reachable(address: str) -> None:
    """A ClusterError in seconds for an address nobody answers at (Ray itself keeps retrying
    for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterError(
            f"cluster address {address!r}: give HOST:PORT (e.g. head-node:6379), auto or local"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise ClusterError(
            f"cannot reach the Ray cluster at {address!r}: {why.lower()} "
            "(start one with `ray start --head`, or use local)"
        ) from None


class Connection:
    """This process as a Ray driver. `address` is "local" (start Ray here, stopped on close),
    "auto" (the cluster this machine joined with `ray start`), HOST:PORT or ray://HOST:PORT."""

    def __init__(self, address: str):
        self.address = address.strip()
        self._tmp: str | None = None
        self._saved_env: dict[str, str | None] = {}
        if not self.address:
            raise ClusterError("the cluster address is empty; give HOST:PORT, auto or local")
        require_ray()
        if self.address not in (LOCAL, "auto"):
            check_reachable(self.address)
        if self.address == LOCAL:
            self._prepare_local()
        self.ray = import_ray()
        options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        # ray.init makes SIGTERM exit the driver at once; the caller's own handlers (finish the
        # step, keep a checkpoint) are put back.
        main = threading.current_thread() is threading.main_thread()
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
        try:
            self.ray.init(address=self.address, **options)
        except Exception as exc:  # noqa: BLE001 - Ray raises several kinds; all mean "cannot use"
            self.close()
            local = self.address == LOCAL
            what = "start Ray on this machine" if local else f"reach the Ray cluster at {address!r}"
            hint = "" if local else " (start one with `ray start --head`, or use local)"
            raise ClusterError(f"cannot {what}: {_first_line(exc)}{hint}") from None
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        log.info("connected to Ray (%s): %s", self.address, self.resources())

    def _prepare_local(self) -> None:
        base = tempfile.gettempdir()
        if len(base) > MAX_TMPDIR - 12:
            base = "/tmp"
        self._tmp = tempfile.mkdtemp(prefix="ray", dir=base)
        token = os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)
        # Ray runs its workers 15 nice levels below itself by default; here they paint at the
        # priority the daemon or the batch was given (nice, systemd's Nice=), as without Ray.
        niceness = os.environ.get("RAY_worker_niceness", "0")
        for key, value in (
            ("RAY_TMPDIR", self._tmp),
            ("RAY_AUTH_MODE", "token"),
            ("RAY_AUTH_TOKEN", token),
            ("RAY_worker_niceness", niceness),
        ):
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value

    def resources(self) -> dict:
        """The cluster's total resources (CPU, GPU, memory, ...)."""
        return self.ray.cluster_resources()

    def close(self) -> None:
        """Disconnect; a local Ray started here is stopped and its folder removed."""
        if self.ray.is_initialized():
            self.ray.shutdown()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
