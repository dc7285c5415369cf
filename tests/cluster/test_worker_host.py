"""A cluster worker paints through the engine host: its cancel(), which Ray delivers on the
actor's second thread (max_concurrency=2) while run() streams, stops the job after its current
step and the picture comes back cancelled. The actor's class is run in this process, without a
cluster, around a stand-in engine."""

from __future__ import annotations

import threading

from impasto.host import EngineHost
from impasto.presets import load_preset
from tests.cluster.conftest import require_ray
from tests.conftest import CAT, STARRY
from tests.engine.test_host import StandInEngine


def test_cancel_from_the_actors_other_thread_stops_the_job(tmp_path):
    require_ray()
    from impasto.cluster.worker import EngineWorker, Request

    cls = EngineWorker.__ray_actor_class__
    worker = cls.__new__(cls)  # __init__ would load TensorFlow
    worker.problem, worker.cancels = None, {}
    worker.host = EngineHost(StandInEngine(steps=10_000, tick=0.005))
    request = Request(
        content=(str(CAT), CAT.read_bytes()),
        styles=[(str(STARRY), STARRY.read_bytes(), 1.0)],
        recipe=load_preset("quick-draft"),
        size=64,
        seed=0,
    )
    items = worker.run(request)
    kind, event = next(items)
    assert kind == "progress"
    threading.Thread(target=worker.cancel, args=(request.id,)).start()
    *_, (kind, result) = list(items)
    assert kind == "result" and result.cancelled and result.stats["steps"] < 10_000
    assert worker.cancels == {}  # nothing of the job left behind
