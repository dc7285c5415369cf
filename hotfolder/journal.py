"""The journal: one SQLite row per job, so a restart after kill -9 or a power cut knows exactly
where every file stood.

A job moves through
    queued -> running -> finishing -> done      (output on disk, input moving to processed/)
                      \\-> failing  -> failed    (reason known, input moving to failed/)
and a crash can stop it anywhere. Every state is written (and fsynced, synchronous=FULL) before
the file operation it announces, and every file operation can be redone safely, so recovery is:
running -> finishing if the output is already on disk, else queued again (the engine resumes
from the job's checkpoint); finishing and failing are simply completed.

Names in outbox/, processed/ and failed/ are reserved in the row before anything is written, so
a redone job writes to the same name instead of making a second output.

A photo's masks (impasto.sidecars) are recorded in its row when it is queued, each with its
identity, and their names in processed/ or failed/ are reserved in the same write that makes
the job finishing or failing: they move with the photo, and a crash part-way is completed
like the photo's own move.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from impasto.hotfolder.layout import printable, safe_name

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the masks column
ACTIVE = ("queued", "running", "finishing", "failing")
ACTIVE_SQL = "(" + ", ".join(f"'{s}'" for s in ACTIVE) + ")"
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    name TEXT NOT NULL,           -- file name in inbox/<route>/
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    output TEXT,                  -- reserved name in outbox/<route>/
    moved_to TEXT,                -- reserved name in processed/<route>/ or failed/<route>/
    reason TEXT,                  -- why it failed, one line
    note TEXT,                    -- anything else worth telling (e.g. input left in the inbox)
    left_in_inbox INTEGER NOT NULL DEFAULT 0,  -- finished, but the input could not be moved
    step INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, eta REAL,
    crashes INTEGER NOT NULL DEFAULT 0,
    masks TEXT,                   -- JSON: the photo's masks, see MaskFile
    queued_at REAL NOT NULL, started_at REAL, finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE INDEX IF NOT EXISTS jobs_file ON jobs(route, name);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True)
class Identity:
    """What tells one file from another that later got the same name."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class MaskFile:
    """A mask beside a job's photo: its name in inbox/<route>/, the file as it was queued, and
    its reserved name in processed/ or failed/ once the job ends."""

    name: str
    identity: Identity
    moved_to: str | None = None

    def to_json(self) -> dict:
        i = self.identity
        return {
            "name": self.name,
            "identity": [i.dev, i.ino, i.size, i.mtime_ns],
            "moved_to": self.moved_to,
        }

    @classmethod
    def from_json(cls, d: dict) -> MaskFile:
        return cls(d["name"], Identity(*d["identity"]), d.get("moved_to"))


def _masks_json(masks) -> str | None:
    return json.dumps([m.to_json() for m in masks]) if masks else None


def _parse_masks(text: str | None) -> tuple[MaskFile, ...] | None:
    """The row's masks, or None when the column is damaged."""
    try:
        return tuple(MaskFile.from_json(d) for d in json.loads(text or "[]"))
    except (ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class Job:
    id: int
    route: str
    name: str
    identity: Identity
    state: str
    output: str | None
    moved_to: str | None
    reason: str | None
    note: str | None
    step: int
    total: int
    eta: float | None
    crashes: int
    queued_at: float
    started_at: float | None
    finished_at: float | None
    masks: tuple[MaskFile, ...] = ()

    @property
    def label(self) -> str:
        """route/name as shown in the log and by --status (control characters escaped)."""
        return printable(f"{self.route}/{self.name}")


def _job(row: sqlite3.Row) -> Job | None:
    """The row as a Job, or None if a name in it is no plain file name (a forged or damaged
    row: the daemon must not move or write anything by it, e.g. failed/../../x)."""
    d = dict(row)
    masks = _parse_masks(d.pop("masks", None))
    names = [d["route"], d["name"]] + [d[k] for k in ("output", "moved_to") if d[k] is not None]
    names += [n for m in masks or () for n in (m.name, m.moved_to) if n is not None]
    if masks is None or not all(map(safe_name, names)):
        log.error("journal row %s is corrupt (a name that is no plain file name); ignored", d["id"])
        return None
    identity = Identity(d.pop("dev"), d.pop("ino"), d.pop("size"), d.pop("mtime_ns"))
    d.pop("left_in_inbox")
    return Job(identity=identity, masks=masks, **d)


class Journal:
    """One connection; open one per thread."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path, self.readonly = Path(path), readonly
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        else:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if not readonly:
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":  # some network file systems: the classic journal is still safe
                log.warning("%s: SQLite WAL unavailable here (%s journal instead)", path, mode)
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(jobs)")}
            if "masks" not in columns:  # a journal from before masks
                self.db.execute("ALTER TABLE jobs ADD COLUMN masks TEXT")
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )

    def close(self) -> None:
        self.db.close()

    def _valid(self, row: sqlite3.Row) -> Job | None:
        """The row's Job; a corrupt row (see _job) is put out of every state's queries."""
        job = _job(row)
        if job is None and not self.readonly:
            self.db.execute("UPDATE jobs SET state = 'corrupt' WHERE id = ?", (row["id"],))
        return job

    def _one(self, sql: str, args: tuple = ()) -> Job | None:
        row = self.db.execute(sql, args).fetchone()
        return self._valid(row) if row else None

    def _all(self, sql: str, args: tuple = ()) -> list[Job]:
        jobs = (self._valid(r) for r in self.db.execute(sql, args).fetchall())
        return [job for job in jobs if job is not None]

    def _set(self, job_id: int, **values) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id))

    # --- intake -------------------------------------------------------------------------------
    def knows(self, route: str, name: str, identity: Identity) -> bool:
        """True if this file needs no new job: one is under way for its name, or this very file
        was finished before but could not be moved out of the inbox."""
        row = self.db.execute(
            f"SELECT 1 FROM jobs WHERE route = ? AND name = ? AND (state IN {ACTIVE_SQL} OR "
            "(left_in_inbox = 1 AND dev = ? AND ino = ? AND size = ? AND mtime_ns = ?)) LIMIT 1",
            (route, name, identity.dev, identity.ino, identity.size, identity.mtime_ns),
        ).fetchone()
        return row is not None

    def enqueue(
        self, route: str, name: str, identity: Identity, masks: tuple[MaskFile, ...] = ()
    ) -> int | None:
        """Queue a file (with the masks beside it) unless a job for its name is already under
        way; returns the job id."""
        cur = self.db.execute(
            "INSERT INTO jobs (route, name, dev, ino, size, mtime_ns, state, queued_at, masks) "
            "SELECT ?, ?, ?, ?, ?, ?, 'queued', ?, ? WHERE NOT EXISTS "
            f"(SELECT 1 FROM jobs WHERE route = ? AND name = ? AND state IN {ACTIVE_SQL})",
            (
                route,
                name,
                identity.dev,
                identity.ino,
                identity.size,
                identity.mtime_ns,
                time.time(),
                _masks_json(masks),
                route,
                name,
            ),
        )
        return cur.lastrowid if cur.rowcount else None

    def claimed_masks(self, route: str) -> set[str]:
        """Names in inbox/<route>/ that are masks of jobs under way (they move with them)."""
        rows = self.db.execute(
            f"SELECT masks FROM jobs WHERE route = ? AND state IN {ACTIVE_SQL} "
            "AND masks IS NOT NULL",
            (route,),
        )
        return {m.name for (text,) in rows for m in _parse_masks(text) or ()}

    # --- the runner ---------------------------------------------------------------------------
    def next_queued(self, routes: list[str], skip: frozenset[int] = frozenset()) -> Job | None:
        """The oldest queued job of one of these routes (arrival order), other than those in
        skip (handed to a runner that has not marked them running yet)."""
        if not routes:
            return None
        marks = ", ".join("?" for _ in routes)
        skipped = ", ".join("?" for _ in skip)
        sql = (
            f"SELECT * FROM jobs WHERE state = 'queued' AND route IN ({marks}) "
            f"AND id NOT IN ({skipped}) ORDER BY id LIMIT 1"
        )
        while (row := self.db.execute(sql, (*routes, *skip)).fetchone()) is not None:
            job = self._valid(row)
            if job is not None:
                return job  # (a corrupt row left the queue: ask again)
        return None

    def get(self, job_id: int) -> Job | None:
        return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def in_state(self, *states: str) -> list[Job]:
        marks = ", ".join("?" for _ in states)
        return self._all(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", states)

    def reserved(self, route: str, column: str) -> set[str]:
        """Names in outbox/ ('output') or processed|failed/ ('moved_to', masks' included) held
        by jobs under way."""
        assert column in ("output", "moved_to")
        rows = self.db.execute(
            f"SELECT {column}, masks FROM jobs WHERE route = ? AND state IN {ACTIVE_SQL}",
            (route,),
        )
        return _names(rows, masks=column == "moved_to")

    def all_outputs(self, route: str) -> set[str]:
        rows = self.db.execute("SELECT output, NULL FROM jobs WHERE route = ?", (route,))
        return _names(rows, masks=False)

    def all_moved(self, route: str) -> set[str]:
        rows = self.db.execute("SELECT moved_to, masks FROM jobs WHERE route = ?", (route,))
        return _names(rows, masks=True)

    def start(self, job_id: int, output: str, total: int) -> None:
        self._set(
            job_id,
            state="running",
            output=output,
            step=0,
            total=total,
            eta=None,
            started_at=time.time(),
        )

    def progress(self, job_id: int, step: int, total: int, eta: float | None) -> None:
        self._set(job_id, step=step, total=total, eta=eta)

    def requeue(self, job_id: int, crashed: bool = False) -> None:
        """Back to the queue: stopped cleanly (SIGTERM), or found running after a crash."""
        if crashed:
            self.db.execute("UPDATE jobs SET crashes = crashes + 1 WHERE id = ?", (job_id,))
        self._set(job_id, state="queued")

    def forget(self, job_id: int) -> None:
        """Drop a job that never started on a file that changed: the intake will see it anew."""
        self.db.execute(
            "DELETE FROM jobs WHERE id = ? AND state IN ('queued', 'running')", (job_id,)
        )

    def finishing(self, job_id: int, moved_to: str, masks: tuple[MaskFile, ...] = ()) -> None:
        self._set(job_id, state="finishing", moved_to=moved_to, masks=_masks_json(masks))

    def set_moved_to(self, job_id: int, moved_to: str) -> None:
        self._set(job_id, moved_to=moved_to)

    def set_masks(self, job_id: int, masks: tuple[MaskFile, ...]) -> None:
        self._set(job_id, masks=_masks_json(masks))

    def failing(
        self, job_id: int, moved_to: str, reason: str, masks: tuple[MaskFile, ...] = ()
    ) -> None:
        self._set(
            job_id, state="failing", moved_to=moved_to, reason=reason, masks=_masks_json(masks)
        )

    def finished(
        self, job_id: int, state: str, note: str | None = None, left: bool = False
    ) -> None:
        assert state in ("done", "failed")
        self._set(job_id, state=state, note=note, left_in_inbox=int(left), finished_at=time.time())

    # --- status and holds ---------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        return {state: n for state, n in rows}

    def recent(self, state: str, limit: int = 5) -> list[Job]:
        return self._all(
            "SELECT * FROM jobs WHERE state = ? ORDER BY finished_at DESC, id DESC LIMIT ?",
            (state, limit),
        )

    def set_hold(self, route: str, reason: str | None) -> None:
        if reason is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (f"hold:{route}",))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"hold:{route}", reason))

    def holds(self) -> dict[str, str]:
        rows = self.db.execute("SELECT key, value FROM meta WHERE key LIKE 'hold:%'")
        return {key[5:]: value for key, value in rows}

    def clear_holds(self) -> None:
        self.db.execute("DELETE FROM meta WHERE key LIKE 'hold:%'")


def _names(rows, masks: bool) -> set[str]:
    """The names in (name, masks JSON) rows, with the masks' moved_to when `masks`."""
    names = set()
    for name, text in rows:
        if name is not None:
            names.add(name)
        if masks:
            names |= {m.moved_to for m in _parse_masks(text) or () if m.moved_to is not None}
    return names
