"""The plain-Python client both editor plug-ins share: build the `impasto stylize` command, run
it, read its JSON progress lines, stop it gently, and turn failures into one-line messages.

Why a subprocess: the editors' embedded Pythons (Krita's, GIMP's) have no TensorFlow, so the
plug-ins never import the engine; they run the `impasto` command recorded at install time.
This module is copied next to each plug-in by `impasto plugin install`, with the two core
modules it shares with the engine (impasto/limits.py and impasto/protocol.py, as
impasto_limits.py and impasto_protocol.py), so it uses only the standard library, no Qt and no
GIMP, and stays importable on the older Pythons editors bundle (3.8+): annotations are strings,
no `match`, no tomllib.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

if __package__ == "impasto.plugin":  # impasto's own copy: the core modules themselves
    from impasto import limits, protocol
elif __package__:  # Krita: the copies inside the plug-in's package
    from . import impasto_limits as limits
    from . import impasto_protocol as protocol
else:  # GIMP: the copies beside this file, on sys.path
    import impasto_limits as limits
    import impasto_protocol as protocol

log = logging.getLogger(__name__)

SETTINGS_FILE = "impasto_settings.json"
# The engine's vocabulary, as the dialogs use it (values from impasto/limits.py).
DEFAULT_PRESET = limits.DEFAULT_PRESET
PRESERVE_COLOR_CHOICES = limits.PRESERVE_COLOR
MIN_SIZE, MAX_SIZE = limits.MIN_SIZE, limits.MAX_SIZE
STYLE_STRENGTH = limits.STYLE_STRENGTH
# The progress events a run yields (see impasto/protocol.py).
Start, Progress, Done, Failed = protocol.Start, protocol.Progress, protocol.Done, protocol.Failed
parse_line, one_line = protocol.parse_line, protocol.one_line

# What a selection means, the dialogs' choice. "mask": the engine gets the whole canvas and the
# selection as its mask, so the style goes inside the selection (soft edges blended) and the
# photo stays outside; the new layer covers the canvas, its alpha the selection's values (the
# engine lets a little style spill outside its mask: there the user sees the layer below).
# "crop": only the selection's bounding box is painted, on its own, and the new layer is cut to
# the selection the same way (faster on a big picture, and a layer holding just that part).
SELECTION_MODES = (
    ("mask", "Style inside the selection, photo outside"),
    ("crop", "Only the selection's box, cut to its shape"),
)
DEFAULT_SELECTION_MODE = "mask"

# Environment variables of the editor's own Python that must not leak into the engine's:
# Krita and GIMP point these at their bundled interpreter, which would break the venv's.
_PYTHON_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE")


class EngineError(Exception):
    """The engine could not do the job; str(error) is one line to show the user as it is."""


class Cancelled(Exception):
    """The user stopped the job; nothing was produced."""


# ----------------------------------------------------------------------------------------------
# Settings: what the dialogs ask for, and the command line they turn into


@dataclass
class StyleSettings:
    """One job as the plug-in dialogs describe it. None means "the preset's value"."""

    styles: list = field(default_factory=list)  # style image paths
    preset: str = DEFAULT_PRESET
    size: int | None = None  # long side of the output, px
    steps: int | None = None  # total optimisation steps
    style_strength: float | None = None  # times the preset's style weight (the engine resolves it)
    style_weight: float | None = None  # absolute, for scripts; dialogs offer the strength
    preserve_color: str | None = None  # "none", "luminance", "histogram"
    seed: int = 0
    selection_mode: str = DEFAULT_SELECTION_MODE  # what a selection means (SELECTION_MODES)

    def check(self) -> None:
        """Refuse what the engine would refuse, before starting it (a clearer, faster error)."""
        if not self.styles:
            raise EngineError("choose at least one style image")
        for style in self.styles:
            if not os.path.isfile(style):
                raise EngineError(f"style image {str(style)!r}: file not found")
        if not str(self.preset).strip():
            raise EngineError("choose a preset")
        if self.size is not None and not MIN_SIZE <= int(self.size) <= MAX_SIZE:
            raise EngineError(f"output size must be from {MIN_SIZE} to {MAX_SIZE} px")
        if self.steps is not None and int(self.steps) < 1:
            raise EngineError("steps must be 1 or more")
        if self.style_strength is not None:
            low, high = STYLE_STRENGTH
            if not low <= float(self.style_strength) <= high:
                raise EngineError(
                    f"style strength must be from {low:g} to {high:g} (times the preset's)"
                )
        if self.style_weight is not None and not float(self.style_weight) > 0:
            raise EngineError("style strength must be greater than 0")
        if self.preserve_color is not None and self.preserve_color not in PRESERVE_COLOR_CHOICES:
            choices = ", ".join(PRESERVE_COLOR_CHOICES)
            raise EngineError(f"colour preservation must be one of {choices}")
        if int(self.seed) < 0:
            raise EngineError("seed must be 0 or more")
        if self.selection_mode not in dict(SELECTION_MODES):
            choices = ", ".join(dict(SELECTION_MODES))
            raise EngineError(f"the selection mode must be one of {choices}")

    def layer_name(self) -> str:
        """What the new layer is called: the preset and the style(s), so several tries can be
        told apart in the layer list."""
        names = [Path(s).stem for s in self.styles]
        return f"impasto {self.preset}: {' + '.join(names)}"


def strength_setting(strength: float) -> float | None:
    """A dialog's strength as a setting: None (the preset as it is) for 1."""
    return None if abs(float(strength) - 1.0) < 1e-9 else float(strength)


def build_command(
    engine: list, content: str, output: str, settings: StyleSettings, mask: str | None = None
) -> list:
    """The argv that runs one job with JSON progress on stdout. A mask (the selection, of the
    content's size) goes to every style: they all paint inside it, blended as without one."""
    settings.check()
    cmd = [*engine, "stylize", str(content), *[str(s) for s in settings.styles]]
    cmd += ["-o", str(output), "--preset", settings.preset, "--seed", str(int(settings.seed))]
    if mask is not None:
        for _ in settings.styles:
            cmd += ["--mask", str(mask)]
    if settings.size is not None:
        cmd += ["--size", str(int(settings.size))]
    if settings.steps is not None:
        cmd += ["--steps", str(int(settings.steps))]
    if settings.style_strength is not None:
        cmd += ["--style-strength", repr(float(settings.style_strength))]
    if settings.style_weight is not None:
        cmd += ["--style-weight", repr(float(settings.style_weight))]
    if settings.preserve_color is not None:
        cmd += ["--preserve-color", settings.preserve_color]
    cmd += ["--progress", "json"]
    return cmd


def default_size(width: int, height: int) -> int:
    """The output size a dialog proposes for a region: its long side, within the engine's range."""
    return max(MIN_SIZE, min(MAX_SIZE, max(int(width), int(height))))


# ----------------------------------------------------------------------------------------------
# The selection as the engine's mask


def selection_mask(values: bytes, width: int, height: int) -> bytes | None:
    """An editor's selection over the picture (one byte a pixel, 255 = selected, grey = a soft
    edge) as the mask to send, or None when it selects everything (no mask: the same picture,
    and the engine's plain path). Refuses a selection that covers none of the picture."""
    values = bytes(values)
    if len(values) != int(width) * int(height):
        raise EngineError("the editor returned no selection values for this picture")
    if not values.strip(b"\x00"):
        raise EngineError("the selection does not cover any of the picture")
    return None if values.count(255) == len(values) else values


def write_mask_png(path: str, values: bytes, width: int, height: int) -> None:
    """Save a selection's values as an 8-bit greyscale PNG (the engine's mask), with the
    standard library alone: both editors' Pythons have it, whatever their image modules."""
    rows = b"".join(
        b"\x00" + values[y * width : (y + 1) * width] for y in range(height)
    )  # filter type 0 (none) before each row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")
    try:
        with open(path, "wb") as fh:
            fh.write(png)
    except OSError as exc:
        raise EngineError(f"cannot write the selection mask to {path}: {exc.strerror}") from None


# ----------------------------------------------------------------------------------------------
# Running the engine


def engine_env(base: dict | None = None) -> dict:
    """The environment for the engine: the editor's, minus its own Python's settings."""
    env = dict(os.environ if base is None else base)
    for key in _PYTHON_ENV:
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cannot_start(program: str, why: str) -> str:
    return (
        f"cannot start the impasto command {program!r}: {why}; "
        "reinstall the plug-in with `impasto plugin install`"
    )


def _check_runnable(program: str) -> None:
    path = program if os.path.dirname(program) else shutil.which(program)
    if not path or not os.path.isfile(path):
        raise EngineError(_cannot_start(program, "no such file"))
    if not os.access(path, os.X_OK):
        raise EngineError(_cannot_start(program, "not executable"))


def _die_with_parent(command: list) -> list:
    """On Linux, have the engine sent SIGTERM if the editor dies (a crash, or GIMP killing its
    plug-in when the user cancels its progress bar): it then stops after its current step
    instead of running on for minutes, orphaned. setpriv(1) sets this before exec'ing the
    engine, which is safer than a preexec_fn in a multi-threaded editor. Without setpriv the
    engine simply runs to its end."""
    if not sys.platform.startswith("linux"):
        return command
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


class EngineRun:
    """One `impasto stylize` process, read by two threads so a GUI can poll it without blocking.

    The engine runs in its own process group (its own session on POSIX) so that cancel() and
    close() reach anything it starts, and so an editor's Ctrl-C never reaches it by accident.
    Use it as a context manager: leaving the block kills whatever is still running.
    """

    def __init__(self, command: list, env: dict | None = None, cwd: str | None = None):
        self.command = [str(c) for c in command]
        self._events: queue.Queue = queue.Queue()
        self._stderr: deque = deque(maxlen=200)
        self._readers: list = []
        self._cancel_requested = False
        self._escalation: threading.Thread | None = None
        self._done: Done | None = None
        self._failed: Failed | None = None
        _check_runnable(self.command[0])
        kwargs = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:  # Windows: a new group, so CTRL_BREAK_EVENT reaches the engine alone
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        log.info("starting %s", " ".join(self.command))
        try:
            self.process = subprocess.Popen(
                _die_with_parent(self.command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=engine_env(env),
                cwd=cwd,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                **kwargs,
            )
        except OSError as exc:
            raise EngineError(_cannot_start(self.command[0], exc.strerror or str(exc))) from None
        for target, stream in (
            (self._read_stdout, self.process.stdout),
            (self._read_stderr, self.process.stderr),
        ):
            t = threading.Thread(target=target, args=(stream,), daemon=True)
            t.start()
            self._readers.append(t)

    # -- reading ---------------------------------------------------------------------------

    def _read_stdout(self, stream) -> None:
        for line in stream:
            event = parse_line(line)
            if event is None:
                continue
            if isinstance(event, Done):
                self._done = event
            elif isinstance(event, Failed):
                self._failed = event
            self._events.put(event)
        stream.close()

    def _read_stderr(self, stream) -> None:
        for line in stream:
            if line.strip():
                self._stderr.append(line.rstrip("\n"))
        stream.close()

    def poll(self) -> list:
        """Every event that arrived since the last call, without waiting (for GUI timers)."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    @property
    def finished(self) -> bool:
        """The process has exited and both of its streams have been read to the end."""
        return self.process.poll() is not None and not any(t.is_alive() for t in self._readers)

    @property
    def drained(self) -> bool:
        """Finished, and every event has been handed out by poll() or events()."""
        return self.finished and self._events.empty()

    def events(self, timeout: float | None = None):
        """Yield events as they arrive until the process ends (for blocking callers)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                yield self._events.get(timeout=0.1)
                continue
            except queue.Empty:
                pass
            if self.drained:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise EngineError(f"the engine did not finish within {timeout:.0f} s")

    # -- stopping --------------------------------------------------------------------------

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def cancel(self, interrupt_grace: float = 10.0, terminate_grace: float = 5.0) -> None:
        """Stop the engine gently, without waiting: SIGINT (it finishes the current step and
        exits), then SIGTERM if it has not gone after interrupt_grace seconds, then SIGKILL
        after terminate_grace more. A background thread escalates, so a GUI stays responsive.
        """
        self._cancel_requested = True
        if self._escalation is not None or self.process.poll() is not None:
            return
        self._signal(signal.SIGINT if os.name == "posix" else signal.CTRL_BREAK_EVENT)
        self._escalation = threading.Thread(
            target=self._escalate, args=(interrupt_grace, terminate_grace), daemon=True
        )
        self._escalation.start()

    def _escalate(self, interrupt_grace: float, terminate_grace: float) -> None:
        for grace, next_signal in ((interrupt_grace, signal.SIGTERM), (terminate_grace, None)):
            try:
                self.process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                pass
            if next_signal is not None:
                log.info("the engine ignored the interrupt; terminating it")
                self._signal(next_signal)
            else:
                log.warning("the engine ignored SIGTERM; killing it")
                self.kill()

    def _signal(self, signum) -> None:
        if self.process.poll() is not None:
            return
        try:
            if os.name == "posix":
                os.killpg(self.process.pid, signum)
            elif signum == signal.SIGTERM:
                self.process.terminate()
            else:
                self.process.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """Kill the engine and everything in its process group, at once."""
        try:
            if os.name == "posix":
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.kill()
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Make sure nothing is left running, and release the pipes. The group is killed even
        when the engine itself has exited: anything it started must not outlive the job."""
        self.kill()
        self.process.wait()
        for t in self._readers:
            t.join(timeout=5)

    def __enter__(self) -> EngineRun:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the outcome ------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=5)
        return code

    def result(self) -> Done:
        """What the finished run produced. Raises Cancelled if the user stopped it, and
        EngineError with the engine's own one-line message if it failed."""
        code = self.wait()
        if self._cancel_requested:
            raise Cancelled()
        if code == 0 and self._done is not None and not self._done.cancelled:
            return self._done
        raise EngineError(self.error_message(code))

    def error_message(self, code: int) -> str:
        """The best one-line explanation of a failed run: the engine's JSON error line, else its
        `impasto: error:` line on stderr, else the last line of a traceback, else the code."""
        if self._failed is not None:
            return self._failed.message
        lines = list(self._stderr)
        for line in reversed(lines):
            if line.startswith("impasto: error:"):
                return one_line(line[len("impasto: error:") :])
        if self._done is not None and self._done.cancelled:
            return "the engine was stopped before it finished (by another program)"
        if code < 0:
            return f"the engine was killed by signal {-code}"
        if lines:
            return one_line(lines[-1])
        if code == 0:
            return "the engine exited without writing a result"
        return f"the engine stopped with exit code {code}"

    @property
    def stderr_tail(self) -> str:
        """The last lines the engine wrote to stderr, for a "details" box or a log."""
        return "\n".join(self._stderr)


def run_job(
    engine: list,
    content: str,
    output: str,
    settings: StyleSettings,
    on_event=None,
    cancel: threading.Event | None = None,
    mask: str | None = None,
) -> Done:
    """Run one job to the end, calling on_event(event) for each progress line; for callers
    without an event loop (GIMP's plug-in process, batch scripts, tests). Setting `cancel`
    stops the engine gently and raises Cancelled."""
    with EngineRun(build_command(engine, content, output, settings, mask)) as run:
        while not run.drained:
            if cancel is not None and cancel.is_set() and not run.cancel_requested:
                run.cancel()
            for event in run.poll():
                if on_event is not None:
                    on_event(event)
            time.sleep(0.05)
        return run.result()


def scratch_dir(prefix: str) -> str:
    """A private temporary folder for one job, named after this process so that folders left
    behind by a plug-in process that was killed (GIMP's cancel kills it) are removed by the
    next run instead of piling up."""
    base = tempfile.gettempdir()
    for name in os.listdir(base) if os.name == "posix" else ():
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to clean up after
    return True


# ----------------------------------------------------------------------------------------------
# Asking the engine about presets


def _query(engine: list, args: list, timeout: float = 120.0) -> str:
    try:
        proc = subprocess.run(
            [*engine, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=engine_env(),
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise EngineError(_cannot_start(engine[0], exc.strerror or str(exc))) from None
    except subprocess.TimeoutExpired:
        what = " ".join(args)
        raise EngineError(f"`impasto {what}` did not answer within {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        message = lines[-1] if lines else f"exit code {proc.returncode}"
        if message.startswith("impasto: error:"):
            message = message[len("impasto: error:") :]
        raise EngineError(one_line(message))
    return proc.stdout


def list_presets(engine: list) -> list:
    """[{"name", "description", "origin", "path", "error"}] from `impasto presets list --json`;
    never a hard-coded list, so new and user presets show up in the dialogs."""
    try:
        presets = json.loads(_query(engine, ["presets", "list", "--json"]))
    except ValueError:
        raise EngineError("`impasto presets list --json` did not print JSON") from None
    return [p for p in presets if isinstance(p, dict) and "name" in p]


def preset_recipe(engine: list, name: str) -> dict:
    """A preset's recipe, from `impasto presets show NAME --json` (the engine's own values, so
    a dialog's defaults are the ones the engine will use)."""
    try:
        shown = json.loads(_query(engine, ["presets", "show", name, "--json"]))
        return dict(shown["recipe"])
    except (ValueError, KeyError, TypeError):
        raise EngineError(f"`impasto presets show {name} --json` did not print a recipe") from None


# ----------------------------------------------------------------------------------------------
# The plug-in's settings file, written by `impasto plugin install`


def read_engine_command(plugin_dir) -> list:
    """The impasto command recorded at install time, checked, as an argv prefix."""
    path = Path(plugin_dir) / SETTINGS_FILE
    try:
        with open(path, encoding="utf-8") as fh:
            command = json.load(fh)["command"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EngineError(
            f"the plug-in's settings ({path}) are missing or broken: "
            "run `impasto plugin install` again"
        ) from None
    if not command or not all(isinstance(c, str) for c in command):
        raise EngineError(f"{path}: no impasto command recorded; run `impasto plugin install`")
    if not os.path.isfile(command[0]) or not os.access(command[0], os.X_OK):
        raise EngineError(
            f"the impasto command {command[0]!r} is gone (was its environment moved or deleted?): "
            "run `impasto plugin install` again from the environment impasto is installed in"
        )
    return list(command)
