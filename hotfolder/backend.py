"""Where the daemon's jobs are painted: by the engine in this process (one job at a time), or by
a pool of engine workers on a Ray cluster ([daemon] cluster, --cluster; one job per worker).

Either way the daemon gets a list of engines with the engine's contract, runs one runner thread
per engine, and stays the only one to touch its journal and folders: a cluster worker gets the
job's files as bytes and sends the picture back.
"""

from __future__ import annotations

import logging
from pathlib import Path

from impasto.host import EngineHost
from impasto.hotfolder.config import DaemonSettings

log = logging.getLogger(__name__)


class LocalBackend:
    """The engine in this process: TensorFlow uses every core for one job at a time, painted on
    the engine host's long-lived thread (impasto.host)."""

    def __init__(self, engine=None):
        if engine is None:
            from impasto import load_engine
            from impasto.engine import weights

            weights.verified_path()  # missing weights: one clear line now, not failed files
            engine = load_engine()
        self.engines = [EngineHost(engine)]

    def close(self) -> None:
        pass


def open_backend(settings: DaemonSettings, engine=None, record: Path | None = None):
    """A backend with .engines (one per runner thread) and .close(); `engine` replaces the
    local engine (tests pass a stand-in). `record` keeps the path of a local Ray's folder while
    it runs (see impasto.cluster.connect.remove_left_behind)."""
    if not settings.cluster:
        return LocalBackend(engine)
    from impasto.cluster.pool import Pool

    pool = Pool(
        settings.cluster,
        workers=settings.workers,
        threads=settings.worker_threads,
        max_deaths=settings.max_crashes,
        record=record,
    )
    log.info("painting on the Ray cluster %s with %d workers", settings.cluster, len(pool.engines))
    return pool
