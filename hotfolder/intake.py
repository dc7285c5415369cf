"""Deciding when a dropped file is ours to take: complete, not a temporary name, and safe to read.

A file is taken once it has held the same size, mtime and inode for settle_seconds, or, when
inotify told us its writer closed it, for closed_settle_seconds after that close with nothing
changed since. Temporary and hidden names are left alone until they are renamed. Watchdog events
only wake the intake up early; a full listing at start and every rescan_seconds is what
guarantees that nothing is missed (network shares drop events, and the daemon may have been down
while files arrived).

Masks (impasto.sidecars: photo.mask.png beside photo.jpg) are never queued as photos. A photo
is queued with the masks beside it at that moment, once they too have settled; a mask that is
still being written holds its photo back. A mask with no photo is left alone (the log says so
once it has settled).
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from impasto.hotfolder.journal import Identity, Journal, MaskFile
from impasto.hotfolder.layout import NOFOLLOW, FolderSwapped, Layout, printable, safe_name
from impasto.paths import reason
from impasto.sidecars import mask_of, photo_stem

log = logging.getLogger(__name__)
NONBLOCK = getattr(os, "O_NONBLOCK", 0)

# Names that copy tools, browsers, editors and office programs use while a file is unfinished,
# and system clutter; they stay in the inbox, untouched, until renamed to a real name.
IGNORED_PREFIXES = (".", "~$")
IGNORED_SUFFIXES = (
    ".part",
    ".partial",
    ".tmp",
    ".temp",
    ".crdownload",
    ".download",
    ".opdownload",
    ".filepart",
    ".swp",
    "~",
)
IGNORED_NAMES = ("thumbs.db", "desktop.ini")


def is_ignored(name: str) -> bool:
    """True for temporary, hidden and system names, which are never taken."""
    low = name.lower()
    return (
        low.startswith(IGNORED_PREFIXES) or low.endswith(IGNORED_SUFFIXES) or low in IGNORED_NAMES
    )


def takeable(name: str) -> bool:
    """True for a name the intake takes: not ignored, text (UTF-8) and a plain file name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not is_ignored(name) and safe_name(name)


@dataclass(frozen=True)
class Verdict:
    """What an inbox entry is: "file" (a candidate), "refuse" (goes to failed/ with reason),
    "gone" (vanished), or "skip" (a folder: not ours)."""

    kind: str
    identity: Identity | None = None
    reason: str | None = None


def inspect(path: Path, root: Path, max_bytes: int) -> Verdict:
    """Look at an inbox entry without following or opening it.

    Symbolic links are refused when they point outside ROOT (or nowhere); FIFOs, sockets and
    devices are refused without being opened, since opening a FIFO blocks and reading a device
    never ends.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Verdict("gone")
    except OSError as exc:
        return Verdict("refuse", reason=f"cannot look at the file ({reason(exc)})")
    identity = Identity.of(st)
    if stat.S_ISDIR(st.st_mode):
        return Verdict("skip", identity)
    if stat.S_ISLNK(st.st_mode):
        target = Path(os.path.realpath(path))
        if not _inside(target, root):
            return Verdict(
                "refuse",
                identity,
                f"a symbolic link to {str(target)!r}, outside the "
                "hot folder: links out of the hot folder are not followed",
            )
        try:
            target_st = os.stat(path)
        except FileNotFoundError:
            return Verdict("refuse", identity, "a symbolic link to a file that does not exist")
        except OSError as exc:
            why = f"a symbolic link that leads nowhere ({reason(exc)})"
            return Verdict("refuse", identity, why)
        if not stat.S_ISREG(target_st.st_mode):
            return Verdict("refuse", identity, "a symbolic link to something that is not a file")
        st = target_st
    kind = _special_kind(st.st_mode)
    if kind:
        return Verdict("refuse", identity, f"{kind}, not a regular file: it was not read")
    if st.st_size > max_bytes:
        return Verdict("refuse", identity, _too_big(st.st_size, max_bytes))
    return Verdict("file", identity)


def _special_kind(mode: int) -> str | None:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if not stat.S_ISREG(mode):
        return "not a file"
    return None


class Unreadable(Exception):
    """Why an inbox file was not read, in words; `changed` when it is no longer the file that
    was queued (the intake will look at it anew) rather than one to refuse."""

    def __init__(self, reason: str, changed: bool = False):
        super().__init__(reason)
        self.reason, self.changed = reason, changed


def read_input(layout: Layout, route: str, name: str, identity: Identity, max_bytes: int) -> bytes:
    """The bytes of inbox/<route>/<name>, read once from one open file checked (fstat) to be
    the very file that was queued: what was checked is what gets painted.

    The file is opened relative to the inbox folder (so a folder swapped for a link since is not
    followed), with O_NOFOLLOW (a file swapped for a link is not followed) and O_NONBLOCK (a
    FIFO swapped in cannot hang the daemon). A link within ROOT, which inspect() accepted, is
    followed, and where it led is checked again once open.
    """
    try:
        folder = layout.open_inbox(route)
    except FolderSwapped:
        raise Unreadable(
            f"inbox/{route} was replaced by a symbolic link while the file waited: nothing was read"
        ) from None
    except OSError as exc:
        raise Unreadable(f"cannot open inbox/{route} ({reason(exc)})") from None
    try:
        fd = _open(name, folder, identity, layout.folder("inbox", route) / name, layout.root)
    except FileNotFoundError:
        raise Unreadable("the file disappeared before it could be read") from None
    except PermissionError:
        raise Unreadable("permission denied: the daemon's user cannot read this file") from None
    except OSError as exc:
        raise Unreadable(f"cannot open the file ({reason(exc)})") from None
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        kind = _special_kind(st.st_mode)
        if kind:
            raise Unreadable(f"{kind}, not a regular file: it was not read")
        data = fh.read(max_bytes + 1)  # the cap holds even if the file grew since fstat
    if len(data) > max_bytes:
        raise Unreadable(_too_big(max(len(data), st.st_size), max_bytes))
    return data


def _open(name: str, folder: int, identity: Identity, path: Path, root: Path) -> int:
    """Open the queued file, refusing (Unreadable, changed) one that is not it any more."""
    flags = os.O_RDONLY | NONBLOCK
    try:
        fd = os.open(name, flags | NOFOLLOW, dir_fd=folder)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        fd = None
    if fd is not None:
        st = os.fstat(fd)
        if Identity.of(st) != identity and not _special_kind(st.st_mode):
            os.close(fd)
            raise Unreadable("changed since it was queued", changed=True)
        return fd  # a FIFO or device swapped in is refused by the caller, as what it is
    # A link: the queued identity is the link's own. inspect() found it leads inside ROOT; open
    # where it leads now and check that the open file is still there (the kernel's name for it).
    if Identity.of(os.stat(name, dir_fd=folder, follow_symlinks=False)) != identity:
        raise Unreadable("changed since it was queued", changed=True)
    fd = os.open(os.path.realpath(path), flags | NOFOLLOW)
    opened = f"/proc/self/fd/{fd}"
    if os.path.exists(opened) and not _inside(os.path.realpath(opened), root):
        os.close(fd)
        raise Unreadable("a symbolic link that now leads out of the hot folder: it was not read")
    return fd


def _inside(path: str | Path, root: Path) -> bool:
    return Path(path).is_relative_to(Path(os.path.realpath(root)))


def _too_big(size: int, max_bytes: int) -> str:
    return (
        f"the file is {size / 1e6:.1f} MB, larger than "
        f"the {max_bytes / 1e6:g} MB limit (max_file_mb in hotfolder.toml)"
    )


class Settler:
    """Tells when a file has stopped changing. Keys are anything hashable; times in seconds."""

    def __init__(self, settle: float, closed_settle: float):
        self.settle, self.closed_settle = settle, closed_settle
        self._seen: dict = {}  # key -> [identity, since, closed_identity, closed_at]

    def __contains__(self, key) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def keys(self) -> list:
        return list(self._seen)

    def observe(self, key, identity: Identity, now: float) -> bool:
        """Record what the file looks like now; True once it is complete."""
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = [identity, now, None, None]
            return False
        if seen[0] != identity:
            seen[0], seen[1] = identity, now  # changed: the clock restarts (a close stays known)
        if now - seen[1] >= self.settle:
            return True
        closed_identity, closed_at = seen[2], seen[3]
        return closed_identity == identity and now - closed_at >= self.closed_settle

    def closed(self, key, identity: Identity, now: float) -> None:
        """The writer closed the file (inotify IN_CLOSE_WRITE), looking like `identity`."""
        seen = self._seen.setdefault(key, [identity, now, None, None])
        seen[2], seen[3] = identity, now

    def forget(self, key) -> None:
        self._seen.pop(key, None)


class Intake:
    """The intake thread: watches inbox/<route>/ folders and queues complete files in the journal.

    It never touches the files; taking them (reading, moving) is the runner's job.
    """

    def __init__(
        self,
        layout: Layout,
        routes: list[str],
        settle: float,
        closed_settle: float,
        rescan: float,
        polling: bool,
        on_queued: Callable[[], None],
    ):
        self.layout, self.routes, self.rescan, self.polling = layout, list(routes), rescan, polling
        self.on_queued = on_queued
        self.settler = Settler(settle, closed_settle)
        self.tick = max(0.05, min(0.5, settle / 4, closed_settle / 2))
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.scanned = threading.Event()  # set after the first full listing has been handled
        self._warned: set = set()
        self._asked = self._listed = 0  # full listings asked for by nudge(), and done since
        self._observer = None

    # --- thread-safe entry points -------------------------------------------------------------
    def nudge(self) -> None:
        """Ask for a full listing soon (e.g. a job gave a file back to the inbox)."""
        self._asked += 1  # only the main thread nudges
        self.events.put(("wake", None))

    def idle(self) -> bool:
        """True when the first listing is done and no file is waiting to settle."""
        return (
            self.scanned.is_set()
            and self._listed == self._asked
            and all(mask_of(name) for _, name in self.settler.keys())  # masks may wait forever
            and self.events.empty()
        )

    # --- the thread ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        journal = Journal(self.layout.journal)
        self._start_observer()
        next_scan = 0.0
        try:
            while not stop.is_set():
                try:
                    now, asked = time.monotonic(), self._asked
                    if now >= next_scan or asked != self._listed:
                        self._list_all()
                        self._listed = asked
                        next_scan = now + self.rescan
                    self._drain(timeout=self.tick)
                    self._check(journal)
                    self.scanned.set()
                except Exception:  # noqa: BLE001 - e.g. the journal's disk is full: keep trying
                    log.exception("the intake hit an error; trying again in a few seconds")
                    stop.wait(5.0)
        finally:
            self._stop_observer()
            journal.close()

    def _start_observer(self) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        handler = _Handler(self.events)
        inbox = self.layout.root / "inbox"
        kinds = [PollingObserver] if self.polling else [Observer, PollingObserver]
        for kind in kinds:
            observer = kind(timeout=min(1.0, self.tick * 2)) if kind is PollingObserver else kind()
            try:
                observer.schedule(handler, str(inbox), recursive=True)
                observer.start()
            except OSError as exc:
                log.warning(
                    "cannot watch %s with %s (%s); polling instead", inbox, kind.__name__, exc
                )
                continue
            self._observer = observer
            log.info("watching %s (%s)", inbox, "polling" if kind is PollingObserver else "events")
            return
        log.warning("no file-system watcher could start; relying on rescans every %gs", self.rescan)

    def _stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def _where(self, path: str) -> tuple[str, str] | None:
        """(route, name) for a path directly inside inbox/<route>/, else None."""
        p = Path(path)
        if p.parent.parent != self.layout.root / "inbox":
            return None
        route = p.parent.name
        if route not in self.routes:
            self._warn_unconfigured(route)
            return None
        return route, p.name

    def _warn_unconfigured(self, route: str) -> None:
        self._warn_once(
            ("route", route),
            "inbox/%s has no [routes.%s] in the config: its files are left alone",
            printable(route),
            printable(route),
        )

    def _warn_once(self, key, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _list_all(self) -> None:
        inbox = self.layout.root / "inbox"
        try:
            entries = list(os.scandir(inbox))
        except OSError as exc:
            log.error("cannot list %s: %s", inbox, exc.strerror)
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in self.routes and not is_ignored(entry.name):
                    self._warn_unconfigured(entry.name)
            elif not is_ignored(entry.name):
                self._warn_once(
                    ("loose", entry.name),
                    "%s is not inside a route folder (inbox/<route>/); it is left alone",
                    printable(entry.path),
                )
        for route in self.routes:
            folder = self.layout.folder("inbox", route)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                names = os.listdir(folder)
            except OSError as exc:
                log.error("cannot list %s: %s", folder, exc.strerror)
                continue
            for name in names:
                self._consider(route, name)

    def _consider(self, route: str, name: str) -> None:
        if is_ignored(name) or (route, name) in self.settler:
            return
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are no text in any encoding we know
            self._warn_once(
                ("name", route, name),
                "inbox/%s/%r: the name is not valid UTF-8; rename the file to have it painted",
                route,
                name,
            )
            return
        if not safe_name(name):  # a backslash: the journal refuses it (Windows and SMB would too)
            self._warn_once(
                ("name", route, name),
                "inbox/%s: a backslash in a name is not taken; rename the file to have it painted",
                printable(f"{route}/{name}"),
            )
            return
        self.settler.observe((route, name), Identity(-1, -1, -1, -1), time.monotonic())

    def _drain(self, timeout: float) -> None:
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            kind, path = item
            where = self._where(path) if path else None
            if where is not None:
                self._consider(*where)
                if kind == "closed" and where in self.settler:
                    try:
                        self.settler.closed(where, Identity.of(os.lstat(path)), time.monotonic())
                    except OSError:
                        pass
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return

    def _check(self, journal: Journal) -> None:
        photos, masks = [], {}  # masks: (route, name) -> (identity, settled)
        now = time.monotonic()
        for route, name in self.settler.keys():
            path = self.layout.folder("inbox", route) / name
            try:
                st = os.lstat(path)
            except OSError:
                self.settler.forget((route, name))  # gone (renamed, deleted): not ours any more
                continue
            if stat.S_ISDIR(st.st_mode):
                self.settler.forget((route, name))
                self._warn_once(
                    ("dir", route, name),
                    "%s is a folder; sub-folders of a route are not watched",
                    printable(path),
                )
                continue
            identity = Identity.of(st)
            settled = self.settler.observe((route, name), identity, now)
            if mask_of(name):  # watched while it is there, never queued itself
                masks[route, name] = (identity, settled)
            elif journal.knows(route, name, identity):
                self.settler.forget((route, name))
            elif settled:
                photos.append((identity.mtime_ns, name, route, identity))
        claimed = {route: journal.claimed_masks(route) for route in {r for r, _ in masks}}
        queued = False
        for _, name, route, identity in sorted(photos):
            mine = [
                (m, ident, settled)
                for (r, m), (ident, settled) in masks.items()
                if r == route and m not in claimed.get(r, ()) and mask_of(m)[0] == photo_stem(name)
            ]
            if not all(settled for _, _, settled in mine):
                continue  # a mask is still being written: the photo waits for it
            self.settler.forget((route, name))
            found = tuple(MaskFile(m, ident) for m, ident, _ in sorted(mine))
            job_id = journal.enqueue(route, name, identity, found)
            if job_id is not None:
                claimed.setdefault(route, set()).update(m.name for m in found)
                shown = printable(f"{route}/{name}")
                if found:
                    shown += printable(f" with {', '.join(m.name for m in found)}")
                log.info("queued %s (job %d)", shown, job_id)
                queued = True
        for (route, name), (_, settled) in masks.items():
            if settled and name not in claimed.get(route, ()):
                self._warn_orphan(route, name)
        if queued:
            self.on_queued()

    def _warn_orphan(self, route: str, name: str) -> None:
        """Once per mask: it settled, and no photo in the inbox is named after it (yet)."""
        if ("orphan", route, name) in self._warned:
            return
        stem = mask_of(name)[0]
        folder = self.layout.folder("inbox", route)
        try:
            has_photo = any(
                photo_stem(n) == stem and not mask_of(n) and not is_ignored(n)
                for n in os.listdir(folder)
            )
        except OSError:
            return
        if not has_photo:
            self._warn_once(
                ("orphan", route, name),
                "inbox/%s is a mask, and no photo %s.* is beside it; it is left alone until "
                "one comes",
                printable(f"{route}/{name}"),
                printable(stem),
            )


class _Handler:
    """Watchdog handler that only forwards paths to the intake's queue (no work in its thread)."""

    def __init__(self, events: queue.SimpleQueue):
        self.events = events

    def dispatch(self, event) -> None:
        if event.is_directory:
            return
        kind = event.event_type
        if kind in ("created", "modified"):
            self.events.put(("changed", os.fsdecode(event.src_path)))
        elif kind == "closed":
            self.events.put(("closed", os.fsdecode(event.src_path)))
        elif kind == "moved":
            self.events.put(("changed", os.fsdecode(event.dest_path)))
