"""Runs a KritaJob without freezing Krita: a timer polls the engine's progress lines (read by the
client's threads) and drives a progress dialog whose Cancel stops the engine gently."""

from __future__ import annotations

import logging

from krita import Krita
from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import QMessageBox, QProgressDialog

from . import impasto_client as client

log = logging.getLogger(__name__)

POLL_MS = 100


class JobRunner(QObject):
    """Owns one running job. Emits finished(status, message) with status "done", "cancelled"
    or "error" once the job is over and the dialog closed."""

    finished = pyqtSignal(str, str)
    progressed = pyqtSignal(int, int)  # step, total

    def __init__(self, job, parent_widget=None):
        super().__init__(parent_widget)
        self.job = job
        self.parent_widget = parent_widget
        self.dialog = QProgressDialog("Starting the engine\u2026", "Cancel", 0, 100, parent_widget)
        self.dialog.setWindowTitle("impasto")
        self.dialog.setWindowModality(Qt.WindowModal)
        self.dialog.setMinimumDuration(0)
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.setMinimumWidth(420)
        self.dialog.canceled.connect(self.cancel)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.job.start()
        self.dialog.setValue(0)
        self.dialog.show()
        self.timer.start()

    def cancel(self) -> None:
        if self.job.run is None or self.job.run.cancel_requested:
            return
        self.job.run.cancel()
        self.dialog.setLabelText("Stopping after the current step\u2026")
        self.dialog.setCancelButton(None)  # one press is enough; the engine needs a moment
        self.dialog.show()  # QProgressDialog hides itself on cancel; keep the feedback visible

    def _tick(self) -> None:
        run = self.job.run
        for event in run.poll():
            if run.cancel_requested:
                continue
            if isinstance(event, client.Start):
                sizes = " \u2192 ".join(f"{w}\u00d7{h}" for w, h, _ in event.scales)
                self.dialog.setLabelText(
                    f"{event.preset} on the {event.device}: {event.total} steps over {sizes}"
                )
            elif isinstance(event, client.Progress):
                self.dialog.setMaximum(event.total)
                self.dialog.setValue(event.step)
                self.dialog.setLabelText(event.label())
                self.progressed.emit(event.step, event.total)
        if run.drained:
            self.timer.stop()
            self._finish()

    def _finish(self) -> None:
        status, message = "done", ""
        try:
            if not _document_open(self.job.doc):
                self.job.cleanup()
                raise client.EngineError("the document was closed while the engine was working")
            self.job.finish()
        except client.Cancelled:
            status = "cancelled"
        except client.EngineError as exc:
            status, message = "error", str(exc)
        except Exception as exc:  # a bug here must not leave a modal dialog behind
            log.exception("finishing the job failed")
            status, message = "error", f"{type(exc).__name__}: {exc}"
        self.dialog.close()
        if status == "error":
            show_error(self.parent_widget, message, self.job.run.stderr_tail)
        self.finished.emit(status, message)


def _document_open(doc) -> bool:
    return any(d == doc for d in Krita.instance().documents())


def show_error(parent, message: str, details: str = "") -> None:
    """The engine's one-line message, with its stderr under "Show Details" for bug reports."""
    box = QMessageBox(QMessageBox.Warning, "impasto", message, QMessageBox.Ok, parent)
    if details:
        box.setDetailedText(details)
    from . import selftest

    if selftest.active():
        box.show()  # the self-test records the box's text in its report instead of a click
        selftest.note_message_box(box)
    else:
        box.exec_()
