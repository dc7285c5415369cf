"""Hot-folder soak: thousands of mixed files, the daemon killed with -9 again and again, and a
long run without kills with its memory sampled. Issue 22's "nothing lost, nothing doubled" at
scale, on the local engine and on a local Ray cluster.

Kill run (per backend): `impasto watch ROOT` (the real engine, tiny pictures: --size px, one
step, preset quick-draft) is fed --files files over time: valid PNG, JPEG, WebP, TIFF, BMP and
GIF, broken ones (truncated, random bytes, empty), files written slowly in several chunks under
their final name, names that arrive again once the first file of that name has left the inbox,
and symbolic links to pictures outside ROOT (which the daemon refuses: failed/, with a reason).
--kills times, at seeded random moments spread over the run, the daemon is killed with SIGKILL:
anywhere while it works, during its start-up and recovery, or just as an output's temporary file
appears (mid-save); it is started again at once. With --backend ray the daemon paints on a local
Ray cluster (`cluster = "local"`, one worker per core) and --worker-kills workers are killed
too. At the end, after a clean stop, it checks that every input is in exactly one place
(processed/, or failed/ with its <name>.error.txt; nothing in the inbox), that nothing is
duplicated, that every output opens whole and belongs to a processed input, and counts what
is left behind: .tmp files and checkpoints under ROOT, anything in the daemon's private TMPDIR
(its local Ray's folder, the workers' files) and processes of that Ray still running.

Memory run (--hours H): one daemon, no kills, valid and broken files fed steadily; the memory
of the daemon and of all its children (Ray's workers and agents) sampled every --sample
seconds. Reported: start, end, maximum, and the least-squares slope in MB per hour; the rule
for "flat" is stated in the results (FLAT_RULE).

    python benchmarks/soak.py --plan                         # the estimated run times
    python benchmarks/soak.py --backend local                # 10,000 files, 20 kills
    python benchmarks/soak.py --backend ray                  # ... and 20 worker kills
    python benchmarks/soak.py --hours 1 --backend local      # memory, an hour, no kills
    python benchmarks/soak.py --hours 1 --backend ray

Each run updates its own section of benchmarks/results/soak-<cpu>-<N>cores.md, and the script
exits with 1 when a file was lost or duplicated, or something was left behind.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, SMOKE, smoke, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "chelsea_cat.png"
STYLE = ROOT / "tests" / "data" / "vangogh_starry_night_1889.jpg"
ROUTE = "soak"
BACKENDS = ("local", "ray")

# What each file is, and how often (the rest of the mix after these is valid pictures).
VALID = ("png", "jpg", "webp", "tif", "bmp", "gif")
MIX = {"broken": 0.10, "slow": 0.06, "same-name": 0.05, "link": 0.03}
FIRST = ("valid",) * 6 + ("broken",) * 4 + ("slow", "link", "same-name")  # every kind, early
# For --plan: seconds per file with files arriving steadily, and per kill (the restart:
# TensorFlow's, and Ray's with its workers'; the job redone) at 32 px, one step. Fitted to the
# full runs alone on a quiet 2-core AMD EPYC (10,000 files and 20 kills: 16.0 min local, 16.5 min
# on Ray with 20 worker kills; results/soak-AMD-EPYC-2cores.md); the split between files and
# kills is a judgement, not measured. Trial runs on a busy machine took up to four times longer.
PER_FILE = {"local": 0.076, "ray": 0.05}
PER_KILL = {"local": 10.0, "ray": 20.0}
PER_WORKER_KILL = 5.0  # one worker starting again while the other paints on
FLAT_RULE = (
    "flat: the least-squares line through the samples taken after the first tenth of the run "
    "(TensorFlow's and Ray's warm-up) rises by less than 2% of the starting memory per hour"
)


# --- the files ---------------------------------------------------------------------------------
class Files:
    """The seeded stream of inputs. Each dropped input is remembered by what identifies it at
    the end whatever its name became (cat.png may end as cat-2.png): its bytes' SHA-256, or for
    a symbolic link, where it points."""

    def __init__(self, inbox: Path, outside: Path, count: int, seed: int):
        self.inbox, self.outside, self.count = inbox, outside, count
        self.rng = random.Random(seed)
        with Image.open(PHOTO) as img:
            self.base = img.convert("RGB")
        self.expected: Counter = Counter()
        self.kinds: dict[tuple, str] = {}  # identity -> "valid", "broken" or "link"
        self.names: list[str] = []  # names dropped so far, for same-name arrivals
        self.dropped = 0
        self.how = Counter()  # how each was dropped: valid, slow, same-name, link, broken
        self.lock = threading.Lock()

    def picture(self, n: int, fmt: str) -> bytes:
        """A small 4:3 crop of the test photo, different for every n (all the same shape, so
        TensorFlow traces its step once)."""
        w, h = self.base.size
        cw, ch = 4 * h // 6, 3 * h // 6
        x, y = (n * 7919) % (w - cw), (n * 104729) % (h - ch)
        side = 40 + n % 25
        img = self.base.crop((x, y, x + cw, y + ch)).resize((side * 4 // 3, side))
        img.putpixel((0, 0), (n % 256, n // 256 % 256, n // 65536 % 256))  # unique pixels
        buf = io.BytesIO()
        img.save(buf, {"jpg": "JPEG", "tif": "TIFF"}.get(fmt, fmt.upper()))
        return buf.getvalue()

    def broken(self, n: int) -> tuple[str, bytes]:
        how = n % 4
        if how == 0:
            return "png", self.picture(n, "png")[: 60 + n % 200]  # truncated
        if how == 1:
            data = self.picture(n, "jpg")
            return "jpg", data[: len(data) // 2]
        if how == 2:
            return "jpg", self.rng.randbytes(500 + n % 1000)  # random bytes
        return "png", b""  # empty

    def plan(self, n: int) -> tuple[str, str, bytes]:
        """(kind, name, bytes) of the n-th input; kind says how it is dropped."""
        roll, fmt = self.rng.random(), VALID[n % len(VALID)]
        edge, kind = 0.0, FIRST[n] if n < len(FIRST) else "valid"
        for name, share in MIX.items() if n >= len(FIRST) else ():
            edge += share
            if roll < edge:
                kind = name
                break
        if kind == "broken":
            fmt, data = self.broken(n)
            return "broken", f"b{n:05d}.{fmt}", data
        if kind == "same-name" and self.names:
            name = self.rng.choice(self.names[-200:])
            return "same-name", name, self.picture(n, name.rpartition(".")[2])
        kind = kind if kind in ("slow", "link") else "valid"
        return kind, f"p{n:05d}.{fmt}", self.picture(n, fmt)

    def remember(self, key: tuple, kind: str) -> None:
        with self.lock:
            self.expected[key] += 1
            self.kinds[key] = kind

    def drop(self, planned: tuple[str, str, bytes], slow_writers: list[threading.Thread]) -> bool:
        """Drop a planned input; False if its name is still taken in the inbox (try later)."""
        kind, name, data = planned
        target = self.inbox / name
        if os.path.lexists(target):
            return False
        if kind == "link":
            real = self.outside / name
            real.write_bytes(data)
            os.symlink(real, target)
            self.remember(("link", str(real)), "link")
        else:
            self.remember(("data", hashlib.sha256(data).hexdigest()), kind_of(kind))
            if kind == "slow":
                thread = threading.Thread(
                    target=write_slowly, args=(target, data, self.rng.random())
                )
                thread.start()
                slow_writers.append(thread)
            elif self.rng.random() < 0.5:  # as a copy tool does: a temporary name, a rename
                part = self.inbox / f"{name}.part"
                part.write_bytes(data)
                os.rename(part, target)
            else:
                target.write_bytes(data)
        if kind in ("valid", "slow"):
            self.names.append(name)
        self.dropped += 1
        self.how[kind] += 1
        return True


def kind_of(kind: str) -> str:
    return "broken" if kind == "broken" else "valid"


def write_slowly(path: Path, data: bytes, r: float) -> None:
    """In 3 to 6 chunks, a pause of up to 0.3 s between them (well under settle_seconds), under
    the final name: a slow copy over a network."""
    chunks = 3 + int(r * 4)
    step = max(1, len(data) // chunks)
    with open(path, "wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(0.05 + 0.25 * r)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def identity(path: Path) -> tuple:
    if path.is_symlink():
        return ("link", os.readlink(path))
    return ("data", hashlib.sha256(path.read_bytes()).hexdigest())


# --- the daemon --------------------------------------------------------------------------------
def write_config(root: Path, backend: str, size: int) -> None:
    cluster = 'cluster = "local"\nworkers = 0\nworker_threads = 1\n' if backend == "ray" else ""
    (root / "hotfolder.toml").write_text(
        "[daemon]\nsettle_seconds = 2.0\nclosed_settle_seconds = 0.3\nrescan_seconds = 10\n"
        f"{cluster}\n[routes.{ROUTE}]\n"
        f'styles = ["{STYLE}"]\npreset = "quick-draft"\nsize = {size}\nsteps = 1\n'
    )


class Daemon:
    """`impasto watch ROOT` with TMPDIR set to a private folder, so everything it and its Ray
    leave in temporary folders can be counted."""

    def __init__(self, root: Path, tmpdir: Path, n: int):
        self.root = root
        self.log_start = log_size(root)
        self.err = open(root.parent / f"daemon-{n}.err", "wb")  # noqa: SIM115 - closed in wait
        env = {**os.environ, "TMPDIR": str(tmpdir), "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "impasto.cli", "watch", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=self.err,
            env=env,
        )

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(
                f"the daemon exited ({self.proc.returncode}): "
                f"{Path(self.err.name).read_text(errors='replace')[-3000:]}"
            )

    def watching(self) -> bool:
        self.check()
        return log_has(self.root, "watching", self.log_start)

    def wait(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=600)
        self.err.close()
        return code


def log_size(root: Path) -> int:
    try:
        return (root / "hotfolder.log").stat().st_size
    except OSError:
        return 0


def log_has(root: Path, text: str, after: int) -> bool:
    try:
        with open(root / "hotfolder.log", "rb") as fh:
            fh.seek(after)
            return text.encode() in fh.read()
    except OSError:
        return False


def rows(root: Path) -> list[tuple]:
    """(name, state, output, moved_to, reason) of every job, read-only as --status reads."""
    path = root / ".hotfolder" / "journal.sqlite"
    if not path.is_file():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT name, state, output, moved_to, reason FROM jobs").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def finished(root: Path) -> int:
    folders = [root / kind / ROUTE for kind in ("processed", "failed")]
    return sum(
        1 for f in folders if f.is_dir() for n in os.listdir(f) if not n.endswith(".error.txt")
    )


def saving(outbox: Path) -> bool:
    try:
        return any(n.startswith(".") and n.endswith(".tmp") for n in os.listdir(outbox))
    except OSError:
        return False


# --- processes and memory ----------------------------------------------------------------------
def processes_of(tmpdir: Path) -> list[int]:
    """This user's processes whose RAY_TMPDIR lies in tmpdir: the daemons' local Rays."""
    wanted = b"RAY_TMPDIR=" + str(tmpdir).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(e.startswith(wanted) for e in environ):
            found.append(int(entry))
    return found


def workers_of(tmpdir: Path) -> list[int]:
    """The painting workers (Ray actors) among them."""
    pids = []
    for pid in processes_of(tmpdir):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::EngineWorker"):
                pids.append(pid)
        except OSError:
            continue
    return pids


def tree(pid: int) -> list[int]:
    """pid and every descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


def memory_mb(pid: int) -> tuple[float, float]:
    """(the daemon's RSS, the PSS of the daemon and its children summed) in MB. PSS shares each
    shared page among its users, so Ray's shared memory is not counted once per process."""
    rss = total = 0.0
    for p in tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        kb = {line.split(":")[0]: line.split()[1] for line in rollup.splitlines()[1:]}
        total += int(kb.get("Pss", 0)) / 1024
        if p == pid:
            rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
            rss /= 1024
    return rss, total


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per hour."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mm = sum(m for _, m in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 3600 * sum((t - mt) * (m - mm) for t, m in samples) / var


# --- the kill run ------------------------------------------------------------------------------
def feed(files: Files, stop: threading.Event, backlog: int, slow: list[threading.Thread]) -> None:
    """Drop the files in order, keeping at most `backlog` waiting in the inbox, so that files
    arrive all through the run (kills and restarts included)."""
    deferred: list[tuple] = []  # same names whose first file is still in the inbox
    n = 0
    while (n < files.count or deferred) and not stop.is_set():
        if len(os.listdir(files.inbox)) >= backlog:
            time.sleep(0.05)
            continue
        if deferred and files.drop(deferred[0], slow):
            deferred.pop(0)
        elif n < files.count:
            planned = files.plan(n)
            if not files.drop(planned, slow):
                deferred.append(planned)
            n += 1
        else:
            time.sleep(0.1)


def kill_points(rng: random.Random, count: int, kills: int) -> list[int]:
    """After how many finished files each kill comes: spread over the run, seeded."""
    span = count / (kills + 1)
    return [int(span * (k + 1) + rng.uniform(-span / 3, span / 3)) for k in range(kills)]


class Progress:
    """How many inputs are finished (processed/ and failed/), and a SystemExit when none has
    finished for `limit` seconds while files wait: a stuck daemon, not a slow one."""

    def __init__(self, root: Path, limit: float):
        self.root, self.limit = root, limit
        self.count, self.at = -1, time.monotonic()

    def done(self) -> int:
        n = finished(self.root)
        if n != self.count:
            self.count, self.at = n, time.monotonic()
        elif time.monotonic() - self.at > self.limit and os.listdir(self.root / "inbox" / ROUTE):
            raise SystemExit(f"no file finished in {self.limit:.0f} s; see {self.root}")
        return n


def soak(args, backend: str, work: Path) -> dict:
    rng = random.Random(args.seed)
    root, tmpdir, outside = work / "root", work / "t", work / "outside"
    for folder in (root / "inbox" / ROUTE, tmpdir, outside):
        folder.mkdir(parents=True)
    write_config(root, backend, args.size)
    files = Files(root / "inbox" / ROUTE, outside, args.files, args.seed)
    outbox = root / "outbox" / ROUTE
    # anywhere, in the start-up and recovery that follows, during a save; again and again
    moments = [("anywhere", "start-up", "save")[k % 3] for k in range(args.kills)]
    points = kill_points(rng, args.files, sum(m != "start-up" for m in moments))
    worker_kills = kill_points(rng, args.files, args.worker_kills) if backend == "ray" else []
    how = Counter()
    stop, slow = threading.Event(), []
    progress = Progress(root, args.stall)
    daemon = Daemon(root, tmpdir, 0)
    while not daemon.watching():
        time.sleep(0.1)
    t0 = time.monotonic()
    feeder = threading.Thread(target=feed, args=(files, stop, args.backlog, slow), daemon=True)
    feeder.start()
    try:
        while moments or worker_kills:
            done = progress.done()
            if worker_kills and done >= worker_kills[0] and daemon.watching():
                worker_kills.pop(0)
                pids = workers_of(tmpdir)
                if pids:
                    time.sleep(rng.uniform(0, 0.5))
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    how["worker"] += 1
            if moments and done >= points[0]:
                points.pop(0)
                moment = moments.pop(0)
                if moment == "save":  # just as an output's temporary file appears
                    deadline = time.monotonic() + 30
                    while not saving(outbox) and time.monotonic() < deadline:
                        daemon.check()
                    time.sleep(rng.uniform(0, 0.01))
                else:
                    time.sleep(rng.uniform(0, 2.0))
                daemon = restart(daemon, root, tmpdir, how, moment)
                while moments and moments[0] == "start-up":
                    moments.pop(0)
                    time.sleep(rng.uniform(0.5, 15.0 if backend == "ray" else 5.0))
                    daemon.check()
                    daemon = restart(daemon, root, tmpdir, how, "start-up")
            daemon.check()
            time.sleep(0.05)
        while feeder.is_alive() or any(t.is_alive() for t in slow):
            daemon.check()
            time.sleep(0.2)
        while progress.done() < files.dropped or os.listdir(files.inbox):
            daemon.check()
            time.sleep(0.2)
        seconds = time.monotonic() - t0
        time.sleep(1.0)  # anything it would still (wrongly) do, it does now
        code = daemon.wait(signal.SIGTERM)
    finally:
        stop.set()
        if daemon.proc.poll() is None:
            daemon.wait(signal.SIGKILL)
    result = check(root, files, outbox)
    time.sleep(2.0)  # Ray's processes go shortly after a clean stop
    result.update(
        backend=backend,
        seconds=seconds,
        files_per_minute=60 * files.dropped / seconds,
        kills=sum(v for k, v in how.items() if k != "worker"),
        worker_kills=how.pop("worker", 0),
        kill_moments=dict(how),
        clean_stop=code,
        tmp_left=sorted(os.listdir(tmpdir)),
        ray_processes_left=len(processes_of(tmpdir)),
    )
    return result


def restart(daemon: Daemon, root: Path, tmpdir: Path, how: Counter, moment: str) -> Daemon:
    daemon.wait(signal.SIGKILL)
    how[moment] += 1
    return Daemon(root, tmpdir, sum(how.values()))


def check(root: Path, files: Files, outbox: Path) -> dict:
    """Where every input ended, and whether the outputs are whole and accounted for."""
    found: Counter = Counter()
    where: dict[tuple, list[str]] = {}
    no_reason = []
    processed = root / "processed" / ROUTE
    for kind in ("inbox", "processed", "failed"):
        folder = root / kind / ROUTE
        for name in listing(folder):
            if kind == "failed" and name.endswith(".error.txt"):
                continue
            key = identity(folder / name)
            found[key] += 1
            where.setdefault(key, []).append(f"{kind}/{name}")
            if kind == "failed" and not (folder / f"{name}.error.txt").is_file():
                no_reason.append(name)
    misplaced = []
    for key, places in where.items():
        should = "processed/" if files.kinds.get(key) == "valid" else "failed/"
        misplaced += [p for p in places if not p.startswith(should)]
    jobs = rows(root)
    done = {r[2] for r in jobs if r[1] == "done"}
    # each output's input, as the journal says, is in processed/ (and was checked above)
    orphans = [r[2] for r in jobs if r[1] == "done" and not (processed / r[3]).is_file()]
    outputs = set(os.listdir(outbox)) if outbox.is_dir() else set()
    torn = []
    for name in sorted(outputs):
        try:
            with Image.open(outbox / name) as img:
                img.load()
        except Exception:  # noqa: BLE001 - any failure to open is a torn output
            torn.append(name)
    failed_reasons = Counter()
    for r in jobs:
        if r[1] == "failed":  # the reasons without the file names, to count them
            failed_reasons[re.sub(r"'[^']*'", "'...'", r[4] or "").split(" (")[0]] += 1
    state = root / ".hotfolder"
    left = [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name.endswith(".tmp") or p.parent in (state / "checkpoints", state / "tmp")
    ]
    failed = [n for n in listing(root / "failed" / ROUTE) if not n.endswith(".error.txt")]
    return {
        "files": files.dropped,
        "kinds": dict(files.how),
        "lost": sum((files.expected - found).values()),
        "duplicated": sum((found - files.expected).values()),
        "processed": len(listing(processed)),
        "failed_with_reason": len(failed) - len(no_reason),
        "failed_without_reason": len(no_reason),
        "misplaced": misplaced[:20],
        "misplaced_count": len(misplaced),
        "outputs": len(outputs),
        "outputs_unaccounted": len(outputs ^ done) + len(orphans),
        "outputs_torn": len(torn),
        "jobs_unfinished": sum(1 for r in jobs if r[1] not in ("done", "failed")),
        "failed_reasons": dict(failed_reasons.most_common(8)),
        "temp_left_in_root": left,
    }


def problems(r: dict) -> list[str]:
    """What makes the run fail."""
    found = [
        f"{r[k]} {k.replace('_', ' ')}"
        for k in ("lost", "duplicated", "failed_without_reason", "misplaced_count",
                  "outputs_unaccounted", "outputs_torn", "jobs_unfinished", "ray_processes_left")
        if r.get(k)
    ]  # fmt: skip
    if r["temp_left_in_root"] or r["tmp_left"]:
        found.append(f"left behind: {r['temp_left_in_root'] + r['tmp_left']}")
    if r["clean_stop"] != 0:
        found.append(f"the last stop exited with {r['clean_stop']}")
    return found


def kill_report(args, r: dict) -> str:
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(r["kinds"].items()))
    moments = ", ".join(f"{v} {k}" for k, v in sorted(r["kill_moments"].items()))
    rows_ = [
        ("files", f"{r['files']} ({kinds})"),
        ("kills", f"{r['kills']} daemon kills ({moments})"),
        *([("worker kills", r["worker_kills"])] if r["backend"] == "ray" else []),
        ("lost", r["lost"]),
        ("duplicated", r["duplicated"]),
        ("processed", r["processed"]),
        ("failed, with a reason", r["failed_with_reason"]),
        ("failed, without a reason", r["failed_without_reason"]),
        ("in the wrong place (a valid file failed, a broken one painted)", r["misplaced_count"]),
        ("outputs (whole, each a processed input's)", f"{r['outputs']} "
         f"({r['outputs_torn']} torn, {r['outputs_unaccounted']} unaccounted for)"),
        ("temporary files left under ROOT", len(r["temp_left_in_root"])),
        ("left in the daemon's TMPDIR (Ray folders included)", len(r["tmp_left"])),
        ("Ray processes left running", r["ray_processes_left"]),
        ("files per minute (kills and restarts included)", f"{r['files_per_minute']:.1f}"),
        ("wall time", f"{r['seconds'] / 60:.1f} min"),
    ]  # fmt: skip
    lines = [
        f"`python benchmarks/soak.py --backend {r['backend']} --files {args.files} "
        f"--kills {args.kills} "
        + (f"--worker-kills {args.worker_kills} " if r["backend"] == "ray" else "")
        + f"--seed {args.seed} --size {args.size}` ({args.size} px, 1 step, preset quick-draft)",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows_],
        "",
        "Why files failed: "
        + ("; ".join(f"{v}x {k}" for k, v in r["failed_reasons"].items()) or "none"),
        "",
        "Verdict: "
        + ("; ".join(problems(r)) if problems(r) else "nothing lost, nothing duplicated, "
           "nothing left behind"),
    ]  # fmt: skip
    return "\n".join(lines)


# --- the memory run ----------------------------------------------------------------------------
def memory(args, backend: str, work: Path) -> dict:
    root, tmpdir, outside = work / "root", work / "t", work / "outside"
    for folder in (root / "inbox" / ROUTE, tmpdir, outside):
        folder.mkdir(parents=True)
    write_config(root, backend, args.size)
    files = Files(root / "inbox" / ROUTE, outside, 10**9, args.seed)
    daemon = Daemon(root, tmpdir, 0)
    while not daemon.watching():
        time.sleep(0.1)
    samples: list[tuple[float, float, float]] = []
    t0 = time.monotonic()
    end = t0 + args.hours * 3600
    n, next_sample = 0, t0
    try:
        while time.monotonic() < end:
            daemon.check()
            if not os.listdir(files.inbox):  # steadily: one waiting at a time
                kind, name, data = files.plan(n)
                if kind in ("valid", "broken"):
                    (files.inbox / name).write_bytes(data)
                    files.dropped += 1
                n += 1
            if time.monotonic() >= next_sample:
                rss, total = memory_mb(daemon.proc.pid)
                samples.append((time.monotonic() - t0, rss, total))
                next_sample += args.sample
            time.sleep(0.05)
        code = daemon.wait(signal.SIGTERM)
    finally:
        if daemon.proc.poll() is None:
            daemon.wait(signal.SIGKILL)
    done = finished(root)
    later = samples[len(samples) // 10 :]
    slope = slope_per_hour([(t, m) for t, _, m in later])
    start = later[0][2] if later else 0.0
    return {
        "backend": backend,
        "hours": args.hours,
        "files": done,
        "samples": samples,
        "start": start,
        "end": samples[-1][2] if samples else 0.0,
        "max": max(m for _, _, m in samples) if samples else 0.0,
        "daemon_start": later[0][1] if later else 0.0,
        "daemon_end": samples[-1][1] if samples else 0.0,
        "slope": slope,
        "flat": start > 0 and slope < 0.02 * start,
        "clean_stop": code,
    }


def memory_report(args, r: dict) -> str:
    every = max(1, len(r["samples"]) // 12)
    shown = r["samples"][::every]
    return "\n".join(
        [
            f"`python benchmarks/soak.py --hours {args.hours:g} --backend {r['backend']} "
            f"--sample {args.sample}`: one daemon, no kills, {r['files']} files painted or "
            f"failed, {len(r['samples'])} samples. Memory: the PSS of the daemon and all its "
            "children (Ray's workers and agents) summed, in MB; the daemon's own RSS beside it.",
            "",
            "| | all processes (PSS) | the daemon (RSS) |",
            "|---|---|---|",
            f"| start (after the first tenth) | {r['start']:.0f} | {r['daemon_start']:.0f} |",
            f"| end | {r['end']:.0f} | {r['daemon_end']:.0f} |",
            f"| max | {r['max']:.0f} | |",
            f"| slope, MB per hour | {r['slope']:+.1f} | |",
            "",
            f"Rule: {FLAT_RULE}. Verdict: {'flat' if r['flat'] else 'NOT flat'}.",
            "",
            "Samples (minutes: MB): " + ", ".join(f"{t / 60:.1f}: {m:.0f}" for t, _, m in shown),
        ]
    )


# --- main --------------------------------------------------------------------------------------
def plan(args) -> None:
    for backend in BACKENDS if args.backend == "both" else (args.backend,):
        if args.hours:  # a memory run is fed for that long, whatever the machine's pace
            print(f"{backend}: the memory run: {args.hours:g} h and a minute")
            continue
        seconds = args.files * PER_FILE[backend] + args.kills * PER_KILL[backend]
        seconds += args.worker_kills * PER_WORKER_KILL if backend == "ray" else 0
        workers = f" and {args.worker_kills} worker kills" if backend == "ray" else ""
        minutes = f"about {seconds / 60:.0f} min"
        print(f"{backend}: {args.files} files, {args.kills} kills{workers}: {minutes}")
    print(
        "(fitted to runs alone on a quiet 2-core AMD EPYC, see PER_FILE in the script; a busy "
        "machine takes longer, and the engine's part shrinks with more cores)"
    )


def results_path(folder: Path) -> Path:
    from impasto.engine.machine import cpu_model

    cpu = "-".join(cpu_model().split()[:2])
    return folder / f"soak-{cpu}-{os.cpu_count()}cores.md"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--worker-kills", type=int, default=20, help="with the Ray backend")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=32, help="long side of the outputs, px")
    p.add_argument("--backlog", type=int, default=30, help="most files waiting in the inbox")
    p.add_argument("--hours", type=float, default=0.0, help="the memory run, this long")
    p.add_argument("--sample", type=float, default=30.0, help="seconds between memory samples")
    p.add_argument("--stall", type=float, default=600.0, help="give up after this many "
                   "seconds without a file finished")  # fmt: skip
    p.add_argument("--plan", action="store_true", help="print the estimated run times")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the results file")
    # A smoke run: 24 files, 2 kills and a 12-second memory run, on the local engine.
    args = smoke(p.parse_args(), files=24, kills=2, backend="local", sample=2.0, backlog=10)
    if args.plan:
        plan(args)
        return 0
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    failed = False
    runs = [("kills", b) for b in backends] if not args.hours else []
    runs += [("memory", b) for b in backends] if args.hours or SMOKE else []
    for mode, backend in runs:
        work = Path(tempfile.mkdtemp(prefix="soak", dir="/tmp"))  # short: Ray's socket paths
        if mode == "kills":
            r = soak(args, backend, work)
            body, why = kill_report(args, r), problems(r)
        else:
            if SMOKE:
                args.hours = 12 / 3600
            r = memory(args, backend, work)
            body = memory_report(args, r)
            why = [] if r["flat"] or SMOKE else ["memory not flat"]
            why += [f"the stop exited with {r['clean_stop']}"] if r["clean_stop"] else []
        if why:
            print(f"kept {work} (the hot folder, its log, the daemons' stderr)", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
        title = f"Soak, {backend} backend: " + (
            f"{r['files']} files, {r['kills']} kills" if mode == "kills" else "memory, no kills"
        )
        path = write_section(f"soak-{mode}-{backend}", title, body, results_path(args.results))
        print(body, flush=True)
        print(f"written to {path}", flush=True)
        if why:
            print(f"FAILED: {'; '.join(why)}", flush=True)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
