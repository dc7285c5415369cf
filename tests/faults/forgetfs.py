"""forgetfs: a FUSE file system that forgets what was not made durable, for power-cut tests.

It passes every operation through to a real backing folder, and keeps aside a *durable image*
of the tree: what a disk would still hold after the power went off. `cut()` throws the live tree
away and rebuilds the backing folder from that image, as the machine would find it on reboot.

The durability model (deliberately simple, and no kinder than POSIX):
- A file's contents become durable at fsync/fdatasync of that file, and only then: the durable
  image keeps a copy of its whole contents (and its mode and mtime) as they were at that moment.
  Data written later is lost at a cut; a file whose data was never synced comes back empty.
- A directory's entries (names, and which file each name is) become durable at fsync of that
  directory, and only then: creating, renaming, linking or unlinking a name changes nothing
  durable until its directory is synced. A rename between two folders is two changes, one per
  folder: syncing only one of them can leave the file in both, or in neither.
- Everything found in the backing folder when the file system starts is durable.
- Optionally (cut's `written_back`), a random share of files and folders also had their current,
  unsynced state written back just before the cut, as a kernel does in the background: a
  program that never syncs is then caught with, say, a new name whose data never made it.
Files are identified by a node number of our own (reported as st_ino, kept across cuts), so a
hard link and its original are one file, and a rename keeps the file's identity, as on a disk.

Run it as `python -m tests.faults.forgetfs BACKING MOUNTPOINT`: it prints "ready" once mounted,
then reads commands on stdin, one a line: "cut" or "cut WRITTEN_BACK SEED" (see cut(); answers
"cut"), "quit" (unmounts). The tests use it through the `forgetfs` fixture (tests/faults/
conftest.py). Everything runs under one lock: it is a test tool, and a correct one matters more
than a fast one.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import random
import shutil
import stat
import subprocess
import sys
import threading
import time

import mfusepy as fuse

ROOT = 1  # the root directory's node


class ForgetFS(fuse.Operations):
    use_ns = True  # times in nanoseconds

    def __init__(self, backing: str):
        self.backing = os.path.realpath(backing)
        self.mutex = threading.RLock()  # not `lock`: that is a FUSE operation's name
        self.pending, self.last_op = 0, 0.0  # operations under way, when the last one came
        self.counting = threading.Lock()
        self.new_node = itertools.count(ROOT + 1).__next__
        self.live: dict[str, int] = {}  # path in the mount -> node
        self.kind: dict[int, str] = {}  # node -> "dir", "file" or "link"
        self.target: dict[int, str] = {}  # symbolic link node -> its target
        self.handles: dict[int, tuple[int, int]] = {}  # file handle -> (backing fd, node)
        self.new_handle = itertools.count(1).__next__
        # the durable image
        self.entries: dict[int, dict[str, int]] = {}  # directory node -> {name: node}
        self.data: dict[int, bytes] = {}  # file node -> contents
        self.meta: dict[int, tuple[int, int]] = {}  # node -> (mode, mtime_ns)
        self._adopt("/", ROOT)

    # --- bookkeeping --------------------------------------------------------------------------
    def _real(self, path: str) -> str:
        return self.backing + path if path != "/" else self.backing

    def _adopt(self, path: str, node: int) -> None:
        """Take what is in the backing folder at `path` as durable (at start)."""
        st = os.lstat(self._real(path))
        self.live[path] = node
        self.meta[node] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        if stat.S_ISDIR(st.st_mode):
            self.kind[node] = "dir"
            self.entries[node] = {}
            for name in os.listdir(self._real(path)):
                child = self.new_node()
                self._adopt(os.path.join(path, name), child)
                self.entries[node][name] = child
        elif stat.S_ISLNK(st.st_mode):
            self.kind[node] = "link"
            self.target[node] = os.readlink(self._real(path))
        else:
            self.kind[node] = "file"
            with open(self._real(path), "rb") as fh:
                self.data[node] = fh.read()

    def _node(self, path: str) -> int:
        try:
            return self.live[path]
        except KeyError:
            raise fuse.FuseOSError(errno.ENOENT) from None

    def _born(self, path: str, kind: str) -> int:
        node = self.new_node()
        self.live[path] = node
        self.kind[node] = kind
        return node

    def _forget_path(self, path: str) -> None:
        self.live.pop(path, None)

    def _move_paths(self, old: str, new: str) -> None:
        """Rename old -> new in the live map, with everything under it (a folder's contents)."""
        for path in [p for p in self.live if p == old or p.startswith(old + "/")]:
            self.live[new + path[len(old) :]] = self.live.pop(path)

    @contextlib.contextmanager
    def _op(self):
        """Every operation runs alone, and is counted (see _wait_for_quiet)."""
        with self.counting:
            self.pending += 1
            self.last_op = time.monotonic()
        try:
            with self.mutex:
                yield
        finally:
            with self.counting:
                self.pending -= 1

    def _wait_for_quiet(self, quiet: float = 0.3, longest: float = 10.0) -> None:
        """Wait until no operation has run for `quiet` seconds: requests a killed process had
        already sent (the kernel may still hand them over) must land before the cut, not
        after it on the rebuilt tree."""
        deadline = time.monotonic() + longest
        while time.monotonic() < deadline:
            with self.counting:
                if not self.pending and time.monotonic() - self.last_op >= quiet:
                    return
            time.sleep(0.02)

    # --- the power cut ------------------------------------------------------------------------
    def cut(self, written_back: float = 0.0, seed: int = 0) -> None:
        """Drop everything that was not durable: the backing folder becomes the durable image.
        `written_back`: the share of files and folders whose unsynced state the kernel happened
        to write to the disk just before the cut (chosen at random, by `seed`), as a real
        kernel does in the background; 0 keeps exactly what was synced. Call it only when no
        process uses the mount (the writer was killed): open files are closed as a dead
        machine would close them."""
        self._wait_for_quiet()
        with self.mutex:
            rng = random.Random(seed)
            for path, node in sorted(self.live.items()):
                if rng.random() >= written_back:
                    continue
                real = self._real(path)
                if self.kind[node] == "dir":
                    self.entries[node] = {
                        n: self.live[os.path.join(path, n)] for n in os.listdir(real)
                    }
                elif self.kind[node] == "file":
                    with open(real, "rb") as fh:
                        self.data[node] = fh.read()
                st = os.lstat(real)
                self.meta[node] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            for fd, _ in self.handles.values():
                os.close(fd)
            self.handles.clear()
            for name in os.listdir(self.backing):
                path = os.path.join(self.backing, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            self.live = {"/": ROOT}
            self._restore("/", ROOT, {})

    def _restore(self, path: str, node: int, placed: dict[int, str]) -> None:
        for name, child in self.entries.get(node, {}).items():
            sub = os.path.join(path, name)
            real = self._real(sub)
            self.live[sub] = child
            kind = self.kind[child]
            mode, mtime = self.meta.get(child, (0o755 if kind == "dir" else 0o644, None))
            if kind == "dir":
                os.mkdir(real, mode)
                self.entries.setdefault(child, {})
                self._restore(sub, child, placed)
            elif kind == "link":
                os.symlink(self.target[child], real)
                continue
            elif child in placed:  # a second name of the same file: a hard link
                os.link(placed[child], real)
                continue
            else:
                with open(real, "wb") as fh:
                    fh.write(self.data.get(child, b""))
                os.chmod(real, mode)
                placed[child] = real
            if mtime is not None:
                os.utime(real, ns=(mtime, mtime))

    def init(self, path):
        print("ready", flush=True)  # mounted: the test may start

    # --- what makes things durable ------------------------------------------------------------
    def fsync(self, path, datasync, fh):
        with self._op():
            fd, node = self.handles[fh]
            os.fsync(fd)
            # read through /proc: the handle may be write-only, or its name already gone
            with open(f"/proc/self/fd/{fd}", "rb") as copy:
                self.data[node] = copy.read()
            st = os.fstat(fd)
            self.meta[node] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        return 0

    def fsyncdir(self, path, datasync, fh):
        with self._op():
            node = self._node(path)
            real = self._real(path)
            names = {}
            for name in os.listdir(real):
                child = self.live[os.path.join(path, name)]
                names[name] = child
                if child not in self.meta:  # a name synced before its data: mode and mtime now
                    st = os.lstat(os.path.join(real, name))
                    self.meta[child] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            self.entries[node] = names
        return 0

    # --- plain pass-through, keeping the live map of names to nodes -----------------------------
    def getattr(self, path, fh=None):
        with self._op():
            st = os.lstat(self._real(path))
            attrs = {k: getattr(st, k) for k in dir(st) if k.startswith("st_")}
            attrs["st_ino"] = self._node(path)
            return attrs

    def readdir(self, path, fh):
        # each name with its node: readdir() skips an entry whose inode number is 0
        with self._op():
            node = self._node(path)
            names = [(".", node), ("..", node)]  # ".." is not looked at by anyone here
            names += [(n, self._node(os.path.join(path, n))) for n in os.listdir(self._real(path))]
            return [(name, {"st_ino": ino}, 0) for name, ino in names]

    def readlink(self, path):
        return os.readlink(self._real(path))

    def statfs(self, path):
        st = os.statvfs(self._real(path))
        return {k: getattr(st, k) for k in dir(st) if k.startswith("f_")}

    def mkdir(self, path, mode):
        with self._op():
            os.mkdir(self._real(path), mode)
            self.entries.setdefault(self._born(path, "dir"), {})
        return 0

    def rmdir(self, path):
        with self._op():
            os.rmdir(self._real(path))
            self._forget_path(path)
        return 0

    def symlink(self, target, source):  # mfusepy's order: the new link's path, then its target
        with self._op():
            os.symlink(source, self._real(target))
            self.target[self._born(target, "link")] = source
        return 0

    def link(self, target, source):  # the new name, then the existing file
        with self._op():
            os.link(self._real(source), self._real(target), follow_symlinks=False)
            self.live[target] = self._node(source)
        return 0

    def unlink(self, path):
        with self._op():
            os.unlink(self._real(path))
            self._forget_path(path)
        return 0

    def rename(self, old, new):
        with self._op():
            os.rename(self._real(old), self._real(new))
            self._forget_path(new)
            self._move_paths(old, new)
        return 0

    def chmod(self, path, mode):
        with self._op():
            os.chmod(self._real(path), mode)
        return 0

    def chown(self, path, uid, gid):
        with self._op():
            os.lchown(self._real(path), uid, gid)
        return 0

    def utimens(self, path, times=None):
        with self._op():
            os.utime(self._real(path), ns=times, follow_symlinks=False)
        return 0

    def truncate(self, path, length, fh=None):
        with self._op():
            if fh in self.handles:
                os.ftruncate(self.handles[fh][0], length)
            else:
                os.truncate(self._real(path), length)
        return 0

    def _handle(self, fd: int, node: int) -> int:
        fh = self.new_handle()  # never reused: a release after a cut finds nothing to close
        self.handles[fh] = (fd, node)
        return fh

    def open(self, path, flags):
        with self._op():
            return self._handle(os.open(self._real(path), flags), self._node(path))

    def create(self, path, mode, flags):
        with self._op():
            fd = os.open(self._real(path), flags | os.O_CREAT, mode)
            node = self.live.get(path) or self._born(path, "file")
            return self._handle(fd, node)

    def read(self, path, size, offset, fh):
        with self._op():
            return os.pread(self.handles[fh][0], size, offset)

    def write(self, path, data, offset, fh):
        with self._op():
            return os.pwrite(self.handles[fh][0], data, offset)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        with self._op():
            entry = self.handles.pop(fh, None)
            if entry is not None:
                os.close(entry[0])
        return 0


def mount(backing: str, mountpoint: str) -> None:
    """Serve forgetfs at mountpoint until "quit" on stdin (or stdin closes)."""
    fs = ForgetFS(backing)

    def commands() -> None:
        for line in sys.stdin:
            words = line.split()
            if words and words[0] == "cut":  # cut [WRITTEN_BACK SEED]
                fs.cut(*(float(words[1]), int(words[2])) if len(words) == 3 else ())
                print("cut", flush=True)
            elif line.strip() == "quit":
                break
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False)

    threading.Thread(target=commands, daemon=True).start()
    # No kernel caching of names or attributes (a cut changes them behind the kernel's back);
    # use_ino: our node numbers are the inodes; hard_remove: an unlinked open file is gone at
    # once, not renamed to .fuse_hidden*.
    fuse.FUSE(
        fs,
        mountpoint,
        foreground=True,
        use_ino=True,
        hard_remove=True,
        entry_timeout=0,
        attr_timeout=0,
        negative_timeout=0,
    )


if __name__ == "__main__":
    mount(sys.argv[1], sys.argv[2])
