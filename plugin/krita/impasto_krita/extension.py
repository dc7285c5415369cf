"""The menu action Tools > Scripts > "Stylise with impasto...": dialog, job, progress, result."""

from __future__ import annotations

import json
import logging
import os

from krita import Extension, Krita
from PyQt5.QtWidgets import QDialog, QMessageBox

from . import impasto_client as client
from . import layers, selftest
from .dialog import StyleDialog, load_last
from .job import KritaJob
from .runner import JobRunner, show_error

log = logging.getLogger(__name__)

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
ACTION_ID = "impasto_stylize"
SETTINGS_GROUP = "impasto"


class ImpastoExtension(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.runner = None

    def setup(self):
        if selftest.active():
            selftest.start(ACTION_ID)

    def createActions(self, window):
        action = window.createAction(ACTION_ID, "Stylise with impasto...", "tools/scripts")
        action.setToolTip("Paint the active layer in the style of an artwork (new layer above it)")
        action.triggered.connect(self.stylize)

    def _window_widget(self):
        window = Krita.instance().activeWindow()
        return window.qwindow() if window is not None else None

    def stylize(self):
        parent = self._window_widget()
        if self.runner is not None:
            QMessageBox.information(parent, "impasto", "impasto is already painting a layer.")
            return
        try:
            self._stylize(parent)
        except client.EngineError as exc:
            selftest.report_error(str(exc))
            show_error(parent, str(exc))

    def _stylize(self, parent):
        doc = Krita.instance().activeDocument()
        if doc is None:
            raise client.EngineError("open an image first")
        node = layers.source_layer(doc)
        canvas = (doc.width(), doc.height())
        box = layers.selection_box(doc)  # refuses a selection that covers nothing, before asking
        engine = client.read_engine_command(PLUGIN_DIR)
        last = load_last(Krita.instance().readSetting(SETTINGS_GROUP, "last", ""))
        dialog = StyleDialog(engine, canvas, last, parent, selection_box=box)
        if selftest.active():
            selftest.drive_dialog(dialog)
        if dialog.exec_() != QDialog.Accepted:
            return
        settings = dialog.settings()
        Krita.instance().writeSetting(SETTINGS_GROUP, "last", json.dumps(dialog.values()))
        job = KritaJob(doc, node, settings, engine)
        runner = JobRunner(job, parent)
        runner.finished.connect(self._finished)
        if selftest.active():
            selftest.watch_runner(runner)
        runner.start()  # raises EngineError if the layer cannot be exported or the engine run
        self.runner = runner

    def _finished(self, status, message):
        runner, self.runner = self.runner, None
        log.info("impasto job %s %s", status, message)
        if selftest.active():
            selftest.job_finished(runner, status, message)
        runner.deleteLater()
