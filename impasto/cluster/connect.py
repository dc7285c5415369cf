"""Joining a Ray cluster, or starting one on this machine for `--cluster local`.

A local start is private to this process: a fresh short temporary folder (Unix socket paths must
stay under about 107 bytes, and Ray nests several folders under RAY_TMPDIR), token
authentication with a random token, listening on 127.0.0.1 only, no dashboard. ray.shutdown()
then stops exactly the processes it started; a cluster we only joined is left running. Nothing
here ever runs `ray stop`, which would stop every Ray process on the machine, other people's
included. A kill -9 leaves that folder behind (and, for a minute or so, Ray's agents): the caller
may name a `record` file where the folder's path is kept while it is in use, and
remove_left_behind(record) at its next start removes what the killed process left.

A cluster is trusted with code both ways: its workers run what drivers send, and what they send
back is unpickled here. So impasto joins only a cluster that asked it for a token (see
_check_token_auth), and `auto` reads the address `ray start` left only from a file of this user's.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import tempfile
import threading
from pathlib import Path

from impasto.errors import ImpastoError

log = logging.getLogger(__name__)

INSTALL = "pip install 'impasto[cluster]'"
LOCAL = "local"
AUTO = "auto"
# RAY_TMPDIR longer than this leaves Ray's socket paths over the kernel's limit.
MAX_TMPDIR = 38
# What tempfile.mkdtemp(prefix="ray") names a folder.
_MKDTEMP_NAME = re.compile(r"ray[a-z0-9_]{8}")
# Set to 1 to join a cluster that lets drivers in without a token (a network only you can reach).
ALLOW_NO_TOKEN = "IMPASTO_CLUSTER_WITHOUT_TOKEN"


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


def auto_address() -> str:
    """The cluster this machine joined with `ray start`: RAY_ADDRESS, else the address `ray
    start` wrote to RAY_TMPDIR/ray/ray_current_cluster (/tmp/ray/... by default). That folder
    belongs to whoever made it first, so the file is believed only when it is this user's and
    nobody else may write it; Ray's own `auto` would also fall back to any Ray it finds running
    on the machine, another user's included."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address and address != AUTO:
        return address
    from ray._common.utils import get_ray_address_file  # the file Ray itself reads

    path = get_ray_address_file(None)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ClusterError(
            f"--cluster auto: this machine has joined no Ray cluster ({path} is missing); "
            "run `ray start`, or give HEAD:PORT"
        ) from None
    except OSError as exc:
        raise ClusterError(f"--cluster auto: cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd) as fh:
        st = os.fstat(fh.fileno())  # of the file read, whatever the name points to later
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ClusterError(
                f"--cluster auto: not trusting {path}: it belongs to another user or others "
                "may write it, so anyone could point impasto at their own cluster; "
                "give HEAD:PORT (or set RAY_ADDRESS)"
            )
        address = fh.read().strip()
    if not address:
        raise ClusterError(f"--cluster auto: {path} is empty; run `ray start`, or give HEAD:PORT")
    return address


def _driver_uses_token() -> bool:
    """Whether this process joined with a token (Ray reads RAY_AUTH_MODE, or a token file)."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:  # a Ray without token authentication
        return False
    return is_token_auth_enabled()


class Connection:
    """This process as a Ray driver. `address` is "local" (start Ray here, stopped on close),
    "auto" (the cluster this machine joined with `ray start`), HOST:PORT or ray://HOST:PORT."""

    def __init__(self, address: str, record: Path | None = None):
        self.address = address.strip()
        self.record = record
        self._tmp: str | None = None
        self._saved_env: dict[str, str | None] = {}
        if not self.address:
            raise ClusterError("the cluster address is empty; give HOST:PORT, auto or local")
        require_ray()
        local = self.address == LOCAL
        if self.address == AUTO:
            self.address = auto_address()
        if not local:
            check_reachable(self.address)
        else:
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
            what = "start Ray on this machine" if local else f"reach the Ray cluster at {address!r}"
            hint = "" if local else " (start one with `ray start --head`, or use local)"
            raise ClusterError(f"cannot {what}: {_first_line(exc)}{hint}") from None
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        if not local:
            self._check_token_auth()
        log.info("connected to Ray (%s): %s", self.address, self.resources())

    def _check_token_auth(self) -> None:
        """Refuse a cluster that let this process in without a token (unless ALLOW_NO_TOKEN):
        anyone who can reach such a cluster can run code on its machines and send this process
        pickles, which it would load. Refused rather than warned about, because a warning in a
        service's log is read after the harm; the opt-out is for a network only you can reach.
        What impasto cannot tell: whether a cluster it joined with a token asks everyone else
        for one (start every node with RAY_AUTH_MODE=token)."""
        if _driver_uses_token():
            return
        problem = (
            f"the Ray cluster at {self.address!r} let this process in without a token: anyone "
            "who can reach it can run code there and here"
        )
        if os.environ.get(ALLOW_NO_TOKEN) == "1":
            log.warning("%s (%s=1: joined anyway)", problem, ALLOW_NO_TOKEN)
            return
        self.close()
        raise ClusterError(
            f"{problem}; start it with RAY_AUTH_MODE=token and give impasto the same "
            f"RAY_AUTH_TOKEN, or set {ALLOW_NO_TOKEN}=1 on a network only you can reach"
        )

    def _prepare_local(self) -> None:
        # this process's temporary folder if short enough, else the system's, else /tmp
        bases = (tempfile.gettempdir(), os.environ.get("TMPDIR") or "/tmp", "/tmp")
        base = next(b for b in bases if len(b) <= MAX_TMPDIR - 12 and os.path.isdir(b))
        self._tmp = tempfile.mkdtemp(prefix="ray", dir=base)
        if self.record is not None:
            self.record.write_text(self._tmp + "\n")
        token = os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)
        # Ray runs its workers 15 nice levels below itself by default; here they paint at the
        # priority the daemon or the batch was given (nice, systemd's Nice=), as without Ray.
        niceness = os.environ.get("RAY_worker_niceness", "0")
        for key, value in (
            ("RAY_TMPDIR", self._tmp),
            # the workers' own temporary files too (the pictures they paint): a worker killed
            # mid-job leaves them in this folder, which goes when Ray stops
            ("TMPDIR", self._tmp),
            # Ray's single-machine mode (its default on macOS and Windows): the node's address
            # is 127.0.0.1 and every Ray process listens there only. Otherwise the GCS and the
            # raylets listen on every interface, and ray.init turns 127.0.0.1 into the
            # machine's address (Ray 2.60).
            ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"),
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
            if self.record is not None:
                self.record.unlink(missing_ok=True)


def remove_left_behind(record: Path) -> None:
    """Remove the private Ray folder a local start recorded in `record` and could not remove
    itself (its process was killed), with the last of that Ray's processes: those whose
    RAY_TMPDIR is that folder, which mkdtemp made unique to the dead process, so nothing else's
    Ray is touched. The caller makes sure the recording process is gone (the daemon's lock)."""
    try:
        folder = record.read_text().strip()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("cannot read %s: %s", record, exc.strerror)
        return
    if _own_ray_folder(folder):
        stopped = _stop_processes_of(folder)
        shutil.rmtree(folder, ignore_errors=True)
        log.info(
            "removed %s, the local Ray folder a killed process left%s",
            folder,
            f" (and stopped {stopped} of its Ray processes still running)" if stopped else "",
        )
    record.unlink(missing_ok=True)


def _own_ray_folder(folder: str) -> bool:
    """Whether `folder` is what _prepare_local makes: an absolute rayXXXXXXXX folder of this
    user's, itself no symbolic link (the record could be stale, or tampered with)."""
    if not os.path.isabs(folder) or not _MKDTEMP_NAME.fullmatch(os.path.basename(folder)):
        return False
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def _stop_processes_of(folder: str) -> int:
    """SIGKILL this user's processes whose environment has RAY_TMPDIR=folder (Linux's /proc;
    elsewhere none are found); returns how many."""
    wanted = b"RAY_TMPDIR=" + folder.encode()
    stopped = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:  # another user's processes cannot be read, so cannot match
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            if wanted in environ:
                os.kill(int(entry), signal.SIGKILL)
                stopped += 1
        except OSError:
            continue
    return stopped


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
