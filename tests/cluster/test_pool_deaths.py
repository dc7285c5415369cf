"""A worker killed mid-job is replaced and the job sent again; so is a replacement killed before
it was ready (found by benchmarks/soak.py: such a picture went to failed/ with "worker 2 could
not start"), up to max_deaths deaths in all. Ray is faked: what is tested is the pool's count."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.cluster.conftest import require_ray


class ActorDied(Exception):
    pass


class Timeout(Exception):
    pass


class FakeRay:
    """ray.get of a ref: an exception is raised, anything else returned."""

    exceptions = SimpleNamespace(RayActorError=ActorDied, GetTimeoutError=Timeout)

    @staticmethod
    def get(ref, timeout=None):
        if isinstance(ref, Exception):
            raise ref
        return ref


class Method:
    def __init__(self, fn):
        self.remote = fn


def fake_workers(script: list[str]):
    """A worker class whose actors, in order, do what `script` says: "paints" (ready, then
    paints), "dies-painting" (ready, then dies mid-job) or "dies-starting"."""
    actors = iter(script)

    class Actor:
        def __init__(self):
            fate = next(actors)
            ready = {"pid": 1, "host": "here", "node": "n" * 8, "problem": None}
            self.info = Method(lambda: ActorDied("died as it started") if fate == "dies-starting"
                               else ready)  # fmt: skip
            result = ("result", "the picture")
            self.run = Method(lambda request: [ActorDied("killed") if fate != "paints" else result])
            self.cancel = Method(lambda request_id: None)

    return SimpleNamespace(options=lambda **o: SimpleNamespace(remote=lambda threads: Actor()))


def engine(script: list[str], monkeypatch):
    require_ray()
    from impasto.cluster import pool, worker

    monkeypatch.setattr(worker.Request, "of", classmethod(lambda cls, checked, resume: "req"))
    fake_pool = SimpleNamespace(
        connection=SimpleNamespace(ray=FakeRay),
        worker_class=fake_workers(script),
        options={},
        threads=1,
        max_deaths=3,
    )
    e = pool.RemoteEngine(fake_pool, 1)
    e.wait(e.start())
    return e, pool


CHECKED = SimpleNamespace(
    content=SimpleNamespace(source="photo.png"), job=SimpleNamespace(checkpoint=None, resume=None)
)


def test_a_replacement_killed_as_it_starts_is_replaced_too(monkeypatch):
    e, _ = engine(["dies-painting", "dies-starting", "paints"], monkeypatch)
    assert e.stylize(CHECKED) == "the picture"


def test_a_worker_killed_mid_job_is_replaced_and_the_job_resent(monkeypatch):  # the control
    e, _ = engine(["dies-painting", "paints"], monkeypatch)
    assert e.stylize(CHECKED) == "the picture"


def test_max_deaths_in_all_fail_the_picture_with_its_reason(monkeypatch):
    e, pool = engine(["dies-painting", "dies-starting", "dies-starting", "paints"], monkeypatch)
    with pytest.raises(pool.WorkerError, match="died 3 times"):
        e.stylize(CHECKED)
    assert e.stylize(CHECKED) == "the picture"  # the last replacement paints the next job
