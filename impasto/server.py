"""The local engine server: one warm engine (impasto.host) that `impasto stylize`, and so the
editor plug-ins, reach over a Unix socket private to the user, so that a second picture costs
only its painting, not TensorFlow's start-up, the weights, the tracing.

Where: $XDG_RUNTIME_DIR/impasto/ (else /tmp/impasto-<uid>/), a folder of mode 0700 holding
engine.sock (0600), engine.lock (held while a server lives: one server per user) and
engine.log. Both sides refuse a folder or socket that another user owns or that others may
open (the client before connecting, the server before using its folder), and the server checks
each peer's uid (SO_PEERCRED, Linux). No network port is ever opened.

The protocol: each message is one line of JSON, followed by the raw bytes of the blobs its
"blobs" field lists the sizes of (images, never base64).

    client -> server  {"op": "run", "version", "client", "content": path,
                       "styles": [[path, weight], ...], "recipe": {...}, "size", "seed",
                       "preview_every", "masks": [path or null, ...] (one per style, or
                       fewer), "blobs": [content, style, ..., mask, ...]}   (the files' bytes;
                       a blob per mask that is not null)
                      {"op": "cancel"} (while its job runs), {"op": "status"}, {"op": "stop"}
    server -> client  {"event": "start", ...}  the start line of `--progress json`
                      {"event": "progress", ...} as --progress json, "blobs": [preview PNG]?
                      {"event": "result", "cancelled", "stats", "settings", "blobs": [PNG]}
                        (no PNG: cancelled before it got the engine)
                      {"event": "error", "kind": "InputError", "message": one line}
                      {"event": "status", "pid", "version", "running", "waiting", "done", ...}

The client reads the files itself (the server never opens a path a client names) and writes
the result itself, atomically, so every file stays the client's. The server decodes the bytes
and checks the job again. A job ends when its client closes the socket (Ctrl-C twice, kill -9):
the engine is free again after the current step.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from impasto import __version__
from impasto.errors import ImpastoError, InputError
from impasto.job import ProgressEvent
from impasto.paths import reason
from impasto.protocol import progress_line

log = logging.getLogger(__name__)

SOCKET, LOCK, LOG = "engine.sock", "engine.lock", "engine.log"
MAX_LINE = 1 << 20  # a message's JSON line; images travel as blobs
MAX_BLOB = 1 << 30  # one image file (the pixel limit is checked when it is decoded)
ANOTHER = 3  # exit code of a server that found another one running (or starting)
START_TIMEOUT = 180.0  # seconds a new server may take to load TensorFlow and the weights
REPLY_TIMEOUT = 60.0  # seconds a server may take to answer (a job: to check it and reply)


class NotPrivate(ImpastoError):
    """The server's folder or socket could be reached by another user: not used."""


class ProtocolError(Exception):
    """The other side sent something that is not this protocol."""


# -- where, and whose ---------------------------------------------------------------------------


def run_dir() -> Path:
    """The server's folder: under $XDG_RUNTIME_DIR (per user, 0700, cleared at logout) when
    there is one, else /tmp/impasto-<uid>."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base) / "impasto"
    return Path(tempfile.gettempdir()) / f"impasto-{os.getuid()}"


def socket_path() -> Path:
    return run_dir() / SOCKET


def check_private(path: Path) -> None:
    """Refuse a folder or socket that is a symbolic link, belongs to another user, or that
    others may open (group or other permission bits): someone else's server could read the
    pictures sent to it, or send back pictures of their own."""
    st = os.lstat(path)
    what = "folder" if stat.S_ISDIR(st.st_mode) else "socket"
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
        raise NotPrivate(f"engine server {str(path)!r} is neither a folder nor a socket")
    if st.st_uid != os.getuid():
        raise NotPrivate(
            f"engine server {what} {str(path)!r} belongs to another user (uid {st.st_uid})"
        )
    if st.st_mode & 0o077:
        wanted = 0o700 if what == "folder" else 0o600
        raise NotPrivate(
            f"engine server {what} {str(path)!r} is open to other users "
            f"(mode {stat.S_IMODE(st.st_mode):o}; it must be {wanted:o})"
        )


def make_run_dir() -> Path:
    """The server's folder, created 0700 if missing, checked private either way."""
    folder = run_dir()
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise InputError(
            f"cannot create the engine server's folder {str(folder)!r} ({reason(exc)})"
        ) from None
    check_private(folder)
    return folder


def connect(timeout: float | None = REPLY_TIMEOUT) -> socket.socket | None:
    """A connection to this user's engine server, or None when none is running. NotPrivate if
    what is there is not private to this user. `timeout` bounds the connection and every
    read and write on it (a server that hangs must not hang its clients)."""
    path = socket_path()
    if not os.path.lexists(path):
        return None
    check_private(path.parent)
    check_private(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):  # a server that died left its socket
        sock.close()
        return None
    except OSError:
        sock.close()
        raise
    return sock


def ask(op: str) -> dict | None:
    """One request without a job ("status", "stop"): the server's answer, or None when no
    server is running."""
    sock = connect()
    if sock is None:
        return None
    with sock, sock.makefile("rb") as reader:
        send(sock, {"op": op})
        got = receive(reader)
    return None if got is None else got[0]


def spawn(idle_minutes: float, verbose: bool = False, cancel=None) -> dict:
    """Start a server in the background, in its own session (a terminal's Ctrl-C or an
    editor's exit does not reach it), and wait until it answers; its status. InputError,
    with the last line of its log, when it cannot start."""
    folder = make_run_dir()
    command = [sys.executable, "-m", "impasto.cli", *(["-v"] if verbose else [])]
    command += ["engine", "start", "--foreground", "--idle", repr(float(idle_minutes))]
    with open(folder / LOG, "w") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            cwd="/",  # never keep a user's folder (or an unplugged disk) busy
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            status = ask("status")
        except OSError:
            status = None
        if status is not None:
            return status
        code = process.poll()
        if code is not None and code != ANOTHER:  # ANOTHER: wait for that one instead
            lines = (folder / LOG).read_text(errors="replace").strip().splitlines()
            why = lines[-1] if lines else f"exit code {code}"
            raise InputError(f"the engine server did not start: {why}")
        if cancel is not None and cancel.is_set():
            raise InputError("stopped while the engine server was starting")
        if time.monotonic() > deadline:
            raise InputError(f"the engine server did not start within {START_TIMEOUT:.0f} s")
        time.sleep(0.2)


# -- the wire -----------------------------------------------------------------------------------


def send(sock: socket.socket, message: dict, blobs: list[bytes] = ()) -> None:
    header = json.dumps({**message, "blobs": [len(b) for b in blobs]}) + "\n"
    sock.sendall(header.encode())
    for blob in blobs:
        sock.sendall(blob)


def receive(reader) -> tuple[dict, list[bytes]] | None:
    """The next message and its blobs; None at the end of the stream."""
    line = reader.readline(MAX_LINE)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError("a message line is too long or cut off")
    try:
        message = json.loads(line)
        sizes = message.pop("blobs", [])
        if not all(isinstance(n, int) and 0 <= n <= MAX_BLOB for n in sizes):
            raise ProtocolError(f"bad blob sizes {sizes!r}")
    except (ValueError, AttributeError):
        raise ProtocolError("a message is not a JSON object") from None
    blobs = []
    for n in sizes:
        blob = reader.read(n)
        if len(blob) != n:
            raise ProtocolError("the stream ended inside a blob")
        blobs.append(blob)
    return message, blobs


def png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)  # lossless; the client re-encodes anyway
    return buf.getvalue()


def peer_uid(sock: socket.socket) -> int | None:
    """The connected process's user id (Linux: SO_PEERCRED), None where it cannot be asked."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


# -- the server ---------------------------------------------------------------------------------


class Server:
    """Accepts clients on the socket, one thread each; their jobs go to one EngineHost."""

    def __init__(self, host, idle_minutes: float, stopping: threading.Event | None = None):
        self.host = host
        self.idle = idle_minutes * 60
        self.stopping = stopping or threading.Event()
        self.started = time.time()
        self._clients = 0
        self._last_client = time.monotonic()
        self._lock = threading.Lock()

    def serve(self, folder: Path) -> None:
        """Serve on folder's socket until stopped or idle (the caller holds folder's lock)."""
        path = folder / SOCKET
        # A dead server's socket, or one it was still preparing: the lock says none is alive.
        for old in (path, *folder.glob(f".{SOCKET}.*")):
            old.unlink(missing_ok=True)
        # Bound under a temporary name, made 0600 and listening, then renamed into place: a
        # client never sees the socket before it is private and ready (a client that checked
        # between bind and chmod was refused as "open to other users").
        staging = folder / f".{SOCKET}.{os.getpid()}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(staging))
        os.chmod(staging, 0o600)  # the 0700 folder already keeps others out; this says so too
        listener.listen(16)
        listener.settimeout(1.0)
        os.rename(staging, path)
        inode = os.stat(path).st_ino
        log.info("engine server ready on %s (pid %d)", path, os.getpid())
        try:
            while not self.stopping.is_set() and not self._idle_out():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with self._lock:
                    self._clients += 1
                threading.Thread(target=self._client, args=(conn,), daemon=True).start()
        finally:
            listener.close()
            try:
                if os.stat(path).st_ino == inode:  # still ours
                    path.unlink()
            except FileNotFoundError:
                pass
        log.info("engine server stopped")

    def _idle_out(self) -> bool:
        if not self.idle:
            return False
        with self._lock:
            if self._clients:
                return False
            quiet_since = self._last_client
        since = self.host.idle_since
        if since is None or time.monotonic() - max(since, quiet_since) < self.idle:
            return False
        log.info("no job for %g minutes: stopping", self.idle / 60)
        return True

    def status(self) -> dict:
        return {
            "event": "status",
            "pid": os.getpid(),
            "version": __version__,
            "socket": str(socket_path()),
            "since": self.started,
            "idle_minutes": self.idle / 60,
            **self.host.status(),
        }

    def _client(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as reader:
                try:
                    self._answer(conn, reader)
                finally:
                    # Wakes the job's listener thread, which holds the reader while it waits:
                    # closing the reader would otherwise wait for the client to hang up.
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
        except (ProtocolError, OSError) as exc:
            log.info("a client's connection ended: %s", exc)
        finally:
            with self._lock:
                self._clients -= 1
                self._last_client = time.monotonic()

    def _answer(self, conn: socket.socket, reader) -> None:
        uid = peer_uid(conn)
        if uid is not None and uid != os.getuid():
            log.warning("refused a client of another user (uid %d)", uid)
            return
        got = receive(reader)
        if got is None:
            return
        message, blobs = got
        op = message.get("op")
        if op == "status":
            send(conn, self.status())
        elif op == "stop":
            log.info("asked to stop")
            self.stopping.set()
            send(conn, self.status())
        elif op == "run":
            self._run(conn, reader, message, blobs)
        else:
            raise ProtocolError(f"unknown op {op!r}")

    def _run(self, conn: socket.socket, reader, message: dict, blobs: list[bytes]) -> None:
        if message.get("version") != __version__:
            _error(conn, "VersionMismatch", f"the engine server runs impasto {__version__}")
            return
        try:
            checked = _checked_job(message, blobs)
            info = self.host.describe(checked)
        except ImpastoError as exc:
            _error(conn, type(exc).__name__, str(exc))
            return
        send(conn, {"event": "start", **info})
        ticket = self.host.submit(checked, str(message.get("client", "")))
        threading.Thread(target=_listen, args=(reader, ticket), daemon=True).start()
        events = ticket.events()
        try:
            for item in events:
                if item is None:
                    continue
                if isinstance(item, ProgressEvent):
                    fields = json.loads(progress_line(item))
                    send(conn, fields, [png(item.preview)] if item.preview is not None else [])
                    continue
                result = {
                    "event": "result",
                    "cancelled": item.cancelled,
                    "stats": item.stats,
                    "settings": item.settings,
                }
                send(conn, result, [png(item.image)])
                return
            send(conn, {"event": "result", "cancelled": True})  # dropped before it started
        except (BrokenPipeError, ConnectionError):
            log.info("a client went away; its job is cancelled")
        except ImpastoError as exc:
            _error(conn, type(exc).__name__, str(exc))
        except Exception as exc:  # noqa: BLE001 - the client runs the job alone instead
            log.exception("the engine failed")
            _error(conn, "EngineFailure", f"{type(exc).__name__}: {exc}")
        finally:
            events.close()  # an unfinished job is cancelled


def _error(conn: socket.socket, kind: str, message: str) -> None:
    with contextlib.suppress(OSError):  # the client may be gone already
        send(conn, {"event": "error", "kind": kind, "message": message})


def _listen(reader, ticket) -> None:
    """The client's side of a running job: "cancel", or the end of the stream (the client is
    gone), stops it."""
    try:
        while (got := receive(reader)) is not None:
            if got[0].get("op") == "cancel":
                break
    except (ProtocolError, OSError, ValueError):  # ValueError: read from a closed file
        pass
    ticket.cancel()


def _checked_job(message: dict, blobs: list[bytes]):
    """The client's job, from the bytes it read, checked again here."""
    from impasto.images import load_image
    from impasto.job import StyleJob, check_job
    from impasto.presets import recipe_from_dict

    try:
        content, styles, masks = message["content"], message["styles"], message.get("masks", [])
        given = [i for i, path in enumerate(masks) if path is not None]
        if len(blobs) != 1 + len(styles) + len(given):
            raise ProtocolError("one blob per image is expected")
        mask_blobs = dict(zip(given, blobs[1 + len(styles) :], strict=True))
        job = StyleJob(
            content=load_image(blobs[0], "content", name=str(content)),
            styles=[
                (load_image(blob, "style", name=str(path)), weight)
                for (path, weight), blob in zip(styles, blobs[1 : 1 + len(styles)], strict=True)
            ],
            preset=recipe_from_dict(message["recipe"], "sent to the engine server"),
            size=message["size"],
            seed=message["seed"],
            preview_every=message.get("preview_every", 0),
            masks=[
                None if i not in mask_blobs else _mask_image(mask_blobs[i], i, path)
                for i, path in enumerate(masks)
            ],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the engine server got a malformed job ({exc})") from None
    return check_job(job)


def _mask_image(blob: bytes, index: int, path):
    """Style index's mask decoded as a run alone decodes it (the same messages)."""
    from impasto.images import load_image

    return load_image(blob, f"mask {index + 1}", name=str(path))


def serve(idle_minutes: float, stopping: threading.Event | None = None) -> int:
    """Run the server in this process until it is asked to stop (`stopping`, or a client's
    "stop") or idles out."""
    import fcntl  # POSIX only, like the whole server

    from impasto.engine import weights
    from impasto.host import EngineHost

    folder = make_run_dir()
    with open(folder / LOCK, "a") as lock:  # held for the server's whole life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # before loading anything: two autostarts at once are cheap
            log.warning("another engine server is running (or starting) in %s", folder)
            return ANOTHER
        weights.verified_path()  # missing weights: one clear line now, not failed jobs
        host = EngineHost()
        host.load()
        _warm_up()
        Server(host, idle_minutes, stopping).serve(folder)
    return 0


def _warm_up() -> None:
    """What the first job would otherwise wait for: this machine's precision and the weights
    in it, as the default preset uses them."""
    from impasto.engine import model
    from impasto.engine.precision import resolve
    from impasto.limits import DEFAULT_PRESET
    from impasto.presets import load_preset

    recipe = load_preset(DEFAULT_PRESET)
    layers = (*recipe.content_layers, *recipe.style_layers)
    model.extractor(layers, recipe.pooling, resolve(recipe.precision).precision)
