"""One stylisation of one Krita layer: export the region, run the engine, add the result layer.

The GUI (runner.py) drives it step by step from a timer so Krita never freezes; tests and the
self-test can run it in one blocking call. Either way nothing touches the document until the
engine has finished successfully: a cancelled or failed job leaves no layer and no temp files.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

from . import impasto_client as client
from . import layers

log = logging.getLogger(__name__)


class KritaJob:
    """Stylise `node` of `doc` with `settings`: the whole canvas, with the selection as the
    engine's mask if there is one (or only the selection's bounds, settings.selection_mode)."""

    def __init__(self, doc, node, settings: client.StyleSettings, engine: list):
        self.doc = doc
        self.node = node
        self.settings = settings
        self.engine = list(engine)
        self.region = layers.work_region(doc, settings.selection_mode)
        if settings.size is None:
            # Paint at the region's own size unless asked otherwise: no rescaling on the way back.
            settings.size = client.default_size(self.region.width, self.region.height)
        self.run: client.EngineRun | None = None
        self.layer = None
        self._tmp = None

    def start(self) -> client.EngineRun:
        """Export the pixels and start the engine; returns the running process to poll."""
        self.settings.check()
        self._tmp = client.scratch_dir("impasto-krita-")
        content = os.path.join(self._tmp, "layer.png")
        output = os.path.join(self._tmp, "stylized.png")
        try:
            layers.export_region(self.node, self.region, content)
            mask = layers.export_mask(self.region, os.path.join(self._tmp, "selection.png"))
            command = client.build_command(self.engine, content, output, self.settings, mask)
            self.run = client.EngineRun(command)
        except Exception:
            self.cleanup()
            raise
        return self.run

    def finish(self):
        """After the engine has exited: add the result layer and return it. Raises Cancelled
        or EngineError (with the engine's message) instead when there is nothing to add."""
        try:
            done = self.run.result()
            bgra = layers.load_result(done.output, self.region)
            name = self.settings.layer_name()
            self.layer = layers.add_result_layer(self.doc, self.node, self.region, bgra, name)
            return self.layer
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self.run is not None:
            self.run.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def run_blocking(self, on_event=None, cancel_after: int | None = None):
        """Run to the end without an event loop (kritarunner tests, scripts). cancel_after=N
        cancels once N progress events have arrived, as a user pressing Cancel would."""
        run = self.start()
        seen = 0
        while not run.drained:
            for event in run.poll():
                if on_event is not None:
                    on_event(event)
                if isinstance(event, client.Progress):
                    seen += 1
                    if cancel_after is not None and seen >= cancel_after:
                        run.cancel()
            time.sleep(0.05)
        return self.finish()
