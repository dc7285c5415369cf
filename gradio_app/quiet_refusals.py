"""Gradio's own refusals of malformed requests: one log line each instead of a traceback.

Some requests never reach the app's code: an API call with too few values, a file slot holding
something that is not a file, a file outside Gradio's upload folder, an unknown endpoint. Gradio
refuses them (the caller gets its error answer) but also prints a whole traceback to the server's
stderr for each, so anyone who can reach the page could fill the server's log with them. The
app's own refusals are one line already (see app.run_job); this gives Gradio's the same shape.
With `impasto -v` the tracebacks are kept, for debugging.
"""

from __future__ import annotations

import logging
import sys
import traceback

log = logging.getLogger(__name__)


def one_line(exc: BaseException) -> str:
    """The exception's type and the first line of its message (later lines may quote the
    request), cut short."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:199] + "…"


def _verbose() -> bool:
    return logging.getLogger().isEnabledFor(logging.INFO)


class _OneLineTracebacks:
    """Stands in for the traceback module inside the Gradio modules that print refusals."""

    def print_exc(self, *args, **kwargs) -> None:
        exc = sys.exc_info()[1]
        if exc is None or _verbose():
            traceback.print_exc(*args, **kwargs)
        else:
            log.warning("refused a request: %s", one_line(exc))

    def __getattr__(self, name: str):
        return getattr(traceback, name)


class _OneLineRecords(logging.Filter):
    """For uvicorn's "Exception in ASGI application" (an endpoint Gradio cannot find)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None and not _verbose():
            record.msg = f"{record.getMessage().strip()}: {one_line(record.exc_info[1])}"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


_FILTER = _OneLineRecords()


def install() -> None:
    """Make Gradio's refusals one line from now on (idempotent)."""
    import gradio.queueing
    import gradio.routes

    for module in (gradio.queueing, gradio.routes):
        if getattr(module, "traceback", None) is traceback:
            module.traceback = _OneLineTracebacks()
    logging.getLogger("uvicorn.error").addFilter(_FILTER)  # a filter is added only once
