"""A cluster worker paints through the engine host: its cancel(), which Ray delivers on the
actor's second thread (max_concurrency=2) while run() streams, stops the job after its current
step and the picture comes back cancelled. The actor's class is run in this process, without a
cluster, around a stand-in engine."""

from __future__ import annotations

import io
import threading

from PIL import Image

from impasto.host import EngineHost
from impasto.presets import load_preset
from tests.cluster.conftest import require_ray
from tests.conftest import CAT, STARRY, WAVE
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
    threading.Thread(target=worker.cancel, args=(request.id,), daemon=True).start()
    *_, (kind, result) = list(items)
    assert kind == "result" and result.cancelled and result.stats["steps"] < 10_000
    assert worker.cancels == {}  # nothing of the job left behind


def test_a_mask_gets_to_ray_workers_as_the_job_checked_it(tmp_path):
    """The cluster request carries the checked mask, under its name: the worker's job has the
    same mask pixels and the same settings as the caller's."""
    require_ray()
    from impasto.cluster.worker import Request
    from impasto.images import load_image
    from impasto.job import StyleJob, check_job

    w, h = Image.open(CAT).size
    img = Image.new("L", (w, h), 0)
    img.paste(255, (0, 0, w // 2, h))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    mask = load_image(buf.getvalue(), "mask 1", name="cat.mask.png")
    checked = check_job(
        StyleJob(
            CAT.read_bytes(),
            [str(STARRY), str(WAVE)],
            size=64,
            masks=[None, mask],
            content_name="cat.png",
        )
    )
    job, names = Request.of(checked).materialise(tmp_path)
    there = check_job(job)
    assert there.settings() == checked.settings()
    assert there.settings()["masks"] == [None, "cat.mask.png"]
    assert there.masks[1].image.tobytes() == checked.masks[1].image.tobytes()
