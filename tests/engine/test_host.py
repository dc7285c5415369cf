"""The engine host with a stand-in engine (no TensorFlow): one job at a time, progress streamed
in order, clients taken in turn, Cancel reaching only the client who asked, errors raised where
the caller can show them, and a job whose caller went away cancelled instead of left running."""

from __future__ import annotations

import threading
import time

import pytest

from impasto import InputError, ProgressEvent, StyleResult
from impasto.host import EngineHost


class StandInEngine:
    """Takes `steps` steps, each waiting until released (or a short tick), honouring cancel."""

    def __init__(self, steps=5, tick=0.0, fail=None):
        self.steps, self.tick, self.fail = steps, tick, fail
        self.running = 0
        self.most_at_once = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.stopped_at = []
        self._lock = threading.Lock()

    def __call__(self, job, on_progress=None, cancel=None):
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            self.started.set()
            if self.fail:
                raise self.fail
            done = 0
            for step in range(1, self.steps + 1):
                if cancel is not None and cancel.is_set():
                    break
                if self.tick:
                    self.release.wait(self.tick)
                done = step
                on_progress(ProgressEvent(step, self.steps, 1, 1, (8, 8), {"total": 1.0}, 0, 0))
            self.stopped_at.append(done)
            return StyleResult(
                image=None,
                stats={"steps": done},
                settings={"job": job},
                cancelled=done < self.steps,
            )
        finally:
            with self._lock:
                self.running -= 1


def test_events_then_the_result():
    runner = EngineHost(StandInEngine(steps=3))
    items = [i for i in runner.run("job") if i is not None]
    assert [i.step for i in items[:-1]] == [1, 2, 3]
    assert isinstance(items[-1], StyleResult) and not items[-1].cancelled


def test_jobs_from_many_pages_run_one_at_a_time():
    engine = StandInEngine(steps=4, tick=0.01)
    runner = EngineHost(engine)
    results = []
    threads = [
        threading.Thread(
            target=lambda n=n: results.append(list(runner.run(n, f"tab{n}"))[-1]), daemon=True
        )
        for n in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 4 and all(not r.cancelled for r in results)
    assert engine.most_at_once == 1


def test_cancel_stops_only_the_pages_own_job():
    engine = StandInEngine(steps=10_000, tick=0.005)
    runner = EngineHost(engine)
    mine = runner.run("mine", "tab-a")
    first = next(i for i in mine if i is not None)
    assert first.step == 1
    assert runner.cancel("tab-b") == 0  # another tab has nothing running
    assert runner.cancel("tab-a") == 1
    *rest, result = list(mine)
    assert result.cancelled and result.stats["steps"] < 10_000


def test_engine_errors_reach_the_caller_and_the_engine_is_free_again():
    runner = EngineHost(StandInEngine(fail=InputError("style image 'x.png': not an image")))
    with pytest.raises(InputError, match="not an image"):
        list(runner.run("job"))
    runner._engine = StandInEngine(steps=1)
    assert list(runner.run("job"))[-1].stats == {"steps": 1}


def test_a_job_whose_page_went_away_is_cancelled():
    engine = StandInEngine(steps=10_000, tick=0.005)
    runner = EngineHost(engine)
    job = runner.run("job", "tab")
    next(i for i in job if i is not None)
    job.close()  # what Gradio does with the generator of a page that disconnected
    deadline = time.monotonic() + 10
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.running == 0
    assert engine.stopped_at and engine.stopped_at[0] < 10_000
    assert runner.cancel("tab") == 0  # nothing left registered for that page


def test_a_slow_step_still_lets_the_caller_hear_from_the_runner(monkeypatch):
    monkeypatch.setattr("impasto.host.HEARTBEAT", 0.01)
    engine = StandInEngine(steps=1, tick=5)  # one step that waits until released
    runner = EngineHost(engine)
    job = runner.run("job", "tab")
    assert next(job) is None  # a heartbeat while the step runs
    engine.release.set()
    assert [type(i).__name__ for i in job if i is not None] == ["ProgressEvent", "StyleResult"]


def test_every_job_runs_on_one_long_lived_engine_thread():
    """A thread per job would give each job's TensorFlow work its own malloc arena and
    per-thread state, and a server's memory would creep up job after job."""
    threads = []

    def engine(job, on_progress=None, cancel=None):
        threads.append(threading.current_thread())
        return StyleResult(image=None, stats={}, settings={})

    runner = EngineHost(engine)
    for n in range(3):
        assert isinstance(list(runner.run(n, f"tab{n}"))[-1], StyleResult)
    assert len(threads) == 3 and len(set(threads)) == 1
    assert threads[0].is_alive()  # still there for the next job


def test_clients_are_taken_in_turn_not_one_clients_burst_first():
    order = []
    gate = threading.Event()

    def engine(job, on_progress=None, cancel=None):
        gate.wait(10)  # the first job holds the engine until every job is queued
        order.append(job)
        return StyleResult(image=None, stats={}, settings={})

    host = EngineHost(engine)
    tickets = [host.submit("a1", "a")]
    while not host.status()["running"]:
        time.sleep(0.01)
    sent = [("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c")]  # a's burst, then b and c
    tickets += [host.submit(job, client) for job, client in sent]
    assert host.status() == {"running": True, "waiting": 4, "done": 0}
    gate.set()
    for ticket in tickets:
        assert isinstance(list(ticket.events())[-1], StyleResult)
    assert order == ["a1", "b1", "c1", "a2", "a3"]
    assert host.status() == {"running": False, "waiting": 0, "done": 5}
    assert host.idle_since is not None


def test_the_engine_contract_on_the_host_thread_with_the_callers_cancel():
    """What the hot folder and a Ray worker call: stylize(checked, on_progress, cancel), with
    their own cancel event, which the host never sets itself."""
    engine = StandInEngine(steps=10_000, tick=0.005)
    host = EngineHost(engine)
    stop = threading.Event()
    seen = []

    def on_progress(event):
        seen.append(event.step)
        if event.step == 3:
            stop.set()

    result = host.stylize("job", on_progress=on_progress, cancel=stop)
    assert result.cancelled and seen[:3] == [1, 2, 3] and result.stats["steps"] < 10_000
    # Set before the job starts, the caller's cancel still gets the engine's cancelled result.
    assert host.stylize("job", cancel=stop).cancelled


def test_an_error_in_the_callers_on_progress_cancels_the_job_not_the_callers_event():
    engine = StandInEngine(steps=10_000, tick=0.005)
    host = EngineHost(engine)
    stop = threading.Event()

    def on_progress(event):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        host.stylize("job", on_progress=on_progress, cancel=stop)
    deadline = time.monotonic() + 10
    while engine.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.running == 0 and not stop.is_set()


def test_a_bare_stylize_callable_describes_nothing():
    """describe() of a host around a bare stylize (a stand-in engine): {} rather than an
    AttributeError, so a door that shows the engine's estimate runs with any engine."""
    from impasto.host import EngineHost

    assert EngineHost(lambda checked, on_progress=None, cancel=None: None).describe(None) == {}
