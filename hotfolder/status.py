"""`impasto watch ROOT --status`: what the daemon is doing, read from its journal.

Reads only (the journal is opened read-only and the lock is only tested), so it is safe to run
at any time, and it never imports TensorFlow.
"""

from __future__ import annotations

import time

from impasto.errors import ImpastoError
from impasto.hotfolder.daemon import note, running_pid
from impasto.hotfolder.journal import Journal
from impasto.hotfolder.layout import Layout, printable
from impasto.protocol import clock

QUEUE_SHOWN = 10


def gather(layout: Layout) -> dict:
    """The daemon's state as plain data (what --status --json prints)."""
    if not layout.journal.is_file():
        raise ImpastoError(
            f"{layout.root}: no hot-folder journal here yet; start `impasto watch {layout.root}`"
        )
    journal = Journal(layout.journal, readonly=True)
    try:
        counts = journal.counts()
        running = journal.in_state("running", "finishing", "failing")
        queued = journal.in_state("queued")
        failed = journal.recent("failed")
        holds = journal.holds()
    finally:
        journal.close()
    now = time.time()
    under_way = [
        {
            "route": job.route,
            "name": job.name,
            "output": job.output,
            "state": job.state,
            "step": job.step,
            "total": job.total,
            "eta": job.eta,
            "seconds": round(now - job.started_at, 1) if job.started_at else None,
        }
        for job in running
    ]
    pid = running_pid(layout)
    return {
        "root": str(layout.root),
        "running": pid is not None,
        "pid": pid,
        "current": under_way[0] if under_way else None,
        "under_way": under_way,  # one per cluster worker; "current" is the first
        "queue": [{"route": j.route, "name": j.name, "crashes": j.crashes} for j in queued],
        "done": counts.get("done", 0),
        "failed": counts.get("failed", 0),
        "recent_failures": [
            {"route": j.route, "name": j.name, "reason": j.reason, "moved_to": j.moved_to}
            for j in failed
        ],
        "holds": holds,
        "paused": note(layout) if pid is not None else None,  # e.g. "paused: no space left ..."
    }


def format_status(info: dict) -> str:
    lines = []
    state = f"running (pid {info['pid']})" if info["running"] else "not running"
    lines.append(f"hot folder {info['root']}: {state}")
    for cur in info["under_way"]:
        share = f" ({100 * cur['step'] // cur['total']}%)" if cur["total"] else ""
        eta = f", about {clock(cur['eta'])} left" if cur["eta"] is not None else ""
        verb = "painting" if info["running"] else "interrupted"
        shown = printable(f"{cur['route']}/{cur['name']}")
        lines.append(f"{verb}: {shown} step {cur['step']}/{cur['total']}{share}{eta}")
    if info.get("paused"):
        lines.append(info["paused"])
    if not info["under_way"]:
        lines.append("painting: nothing")
    queue = info["queue"]
    names = ", ".join(printable(f"{q['route']}/{q['name']}") for q in queue[:QUEUE_SHOWN])
    more = f", and {len(queue) - QUEUE_SHOWN} more" if len(queue) > QUEUE_SHOWN else ""
    lines.append(f"queue: {len(queue)} waiting" + (f": {names}{more}" if queue else ""))
    lines.append(f"done: {info['done']}   failed: {info['failed']}")
    for f in info["recent_failures"]:
        lines.append(printable(f"  failed/{f['route']}/{f['moved_to']}: {f['reason']}"))
    for route, reason in info["holds"].items():
        lines.append(printable(f"route {route} on hold: {reason}"))
    return "\n".join(lines)
