"""A self-test switch for proving the plug-in inside a real Krita, off unless asked for.

When IMPASTO_KRITA_SELFTEST names a JSON file, the plug-in waits for the document Krita was
started with, triggers its own menu action, fills the dialog with the file's values and presses
Stylise (optionally Cancel after some steps), then saves the document, writes a report and quits
Krita. Everything in between is the code a user runs: the same action, dialog, runner and layer
code. The file's keys:

  dialog       values for the dialog: styles, preset, selection_mode, size, steps, strength,
               preserve_color, seed
  layer        name of the layer to make active first (default: Krita's choice)
  select       [x, y, w, h] to select before stylising (default: no selection)
  feather      feather that selection by this many pixels (a soft selection)
  cancel_after press the progress dialog's Cancel after this many progress lines
  save_as      where to save the document afterwards (.kra)
  report       where to write the JSON report (status, message, layers, command)
  screenshots  {"dialog": png, "progress": png, "window": png}: pictures for the README
  window_size  [w, h] of Krita's window, for those pictures
  quit         quit Krita when done (default true)
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback

log = logging.getLogger(__name__)

ENV = "IMPASTO_KRITA_SELFTEST"
WAIT_FOR_DOCUMENT_S = 180

_state: dict = {"spec": None, "events": []}


def active() -> bool:
    return bool(os.environ.get(ENV))


def spec() -> dict:
    if _state["spec"] is None:
        with open(os.environ[ENV], encoding="utf-8") as fh:
            _state["spec"] = json.load(fh)
    return _state["spec"]


def _note(event: str) -> None:
    _state["events"].append(event)
    log.info("self-test: %s", event)


def write_report(report: dict) -> None:
    path = spec().get("report")
    if not path:
        return
    report = {**report, "events": list(_state["events"])}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
    os.replace(tmp, path)


def report_error(message: str) -> None:
    if active():
        write_report({"status": "error", "message": message, "stage": "before the engine"})
        _quit_soon()


def start(action_id: str) -> None:
    """Called from Extension.setup(): wait for Krita's window and document, then act."""
    from PyQt5.QtCore import QTimer

    deadline = time.monotonic() + WAIT_FOR_DOCUMENT_S

    def poll():
        try:
            if _ready(action_id):
                _note("document ready")
                QTimer.singleShot(500, lambda: _trigger(action_id))
                return
            if time.monotonic() > deadline:
                write_report({"status": "error", "message": "no document was opened"})
                _quit_soon()
                return
            QTimer.singleShot(250, poll)
        except Exception:
            _fail()

    QTimer.singleShot(250, poll)


def _ready(action_id: str) -> bool:
    from krita import Krita

    app = Krita.instance()
    window = app.activeWindow()
    return (
        window is not None
        and window.activeView() is not None
        and app.activeDocument() is not None
        and app.action(action_id) is not None
    )


def _trigger(action_id: str) -> None:
    from krita import Krita, Selection

    try:
        app = Krita.instance()
        doc = app.activeDocument()
        s = spec()
        if s.get("window_size"):
            app.activeWindow().qwindow().resize(*s["window_size"])
        if s.get("layer"):
            node = doc.nodeByName(s["layer"])
            if node is None:
                raise RuntimeError(f"no layer named {s['layer']!r}")
            doc.setActiveNode(node)
        if s.get("select"):
            x, y, w, h = s["select"]
            selection = Selection()
            selection.select(x, y, w, h, 255)
            if s.get("feather"):
                selection.feather(int(s["feather"]))
            doc.setSelection(selection)
        doc.waitForDone()
        _note("triggering the action")
        app.action(action_id).trigger()
    except Exception:
        _fail()


def drive_dialog(dialog) -> None:
    """Fill the settings dialog as a user would, take its picture, press Stylise."""
    from PyQt5.QtCore import QTimer

    def fill():
        try:
            dialog.restore(spec().get("dialog", {}))
            _state["dialog_size"] = dialog.size.value()  # the default, or the value given
            QTimer.singleShot(300, press)
        except Exception:
            dialog.reject()
            _fail()

    def press():
        try:
            shot = spec().get("screenshots", {}).get("dialog")
            if shot:
                dialog.grab().save(shot, "PNG")
            _note("pressing Stylise")
            dialog.accept()
            if dialog.isVisible():  # the dialog refused the values: report its message
                message = dialog.error.text()
                dialog.reject()
                write_report({"status": "error", "message": message, "stage": "dialog"})
                _quit_soon()
        except Exception:
            dialog.reject()
            _fail()

    QTimer.singleShot(300, fill)


def watch_runner(runner) -> None:
    """Take the progress dialog's picture, and press its own Cancel button after spec's
    cancel_after lines."""
    limit = spec().get("cancel_after")
    shot = spec().get("screenshots", {}).get("progress")
    from PyQt5.QtWidgets import QPushButton

    def on_progress(step, total):
        if shot and not _state.get("progress_shot") and step >= min(10, total):
            _state["progress_shot"] = True
            runner.dialog.grab().save(shot, "PNG")
        if limit and step >= limit and not runner.job.run.cancel_requested:
            buttons = runner.dialog.findChildren(QPushButton)
            _note(f"pressing Cancel at step {step}/{total}")
            if buttons:
                buttons[0].click()
            else:
                runner.cancel()

    runner.progressed.connect(on_progress)


def note_message_box(box) -> None:
    """Record what an error box says (the user would read it), then close it."""
    from PyQt5.QtCore import QTimer

    _state["message_box"] = {"title": box.windowTitle(), "text": box.text()}
    QTimer.singleShot(300, box.close)


def job_finished(runner, status: str, message: str) -> None:
    """Save the document, picture the window, write the report, quit."""
    from krita import Krita
    from PyQt5.QtCore import QTimer

    def save():
        try:
            app = Krita.instance()
            doc = runner.job.doc
            s = spec()
            shot = s.get("screenshots", {}).get("window")
            if shot and app.activeWindow() is not None:
                app.activeWindow().qwindow().grab().save(shot, "PNG")
            run = runner.job.run
            saved = None
            if s.get("save_as"):
                saved = bool(doc.saveAs(s["save_as"]))
                doc.waitForDone()
            write_report(
                {
                    "status": status,
                    "message": message,
                    "saved": saved,
                    "layers": [n.name() for n in doc.topLevelNodes()],
                    "new_layer": runner.job.layer.name() if runner.job.layer else None,
                    "region": [
                        runner.job.region.x,
                        runner.job.region.y,
                        runner.job.region.width,
                        runner.job.region.height,
                    ],
                    "command": run.command if run else None,
                    "engine_pid": run.process.pid if run else None,
                    "engine_returncode": run.process.returncode if run else None,
                    "message_box": _state.get("message_box"),
                    "dialog_size": _state.get("dialog_size"),
                }
            )
            _quit_soon()
        except Exception:
            _fail()

    _note(f"job {status}")
    QTimer.singleShot(1500, save)  # let the canvas repaint before the picture


def _fail() -> None:
    trace = traceback.format_exc()
    write_report({"status": "error", "message": "self-test failed", "trace": trace})
    _quit_soon()


def _quit_soon() -> None:
    if not spec().get("quit", True):
        return
    from krita import Krita
    from PyQt5.QtCore import QTimer

    def quit_krita():
        app = Krita.instance()
        for doc in app.documents():
            doc.setModified(False)  # saved already, or deliberately left alone
        app.action("file_quit").trigger()

    QTimer.singleShot(500, quit_krita)
