"""The hot folder and `impasto batch` on a real Ray cluster (two nodes on this machine, see
conftest.py), with the real engine on small pictures. What a studio cares about: every photo
ends with exactly one painting whatever dies on the way (a worker, the daemon), bad files end
in failed/ with their reason, and nothing keeps running once its owner has gone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.hotfolder.helpers import STARRY, cat, files_under, image_bytes, jobs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("weights_available")]

WORKER = re.compile(r"worker (\d+) \(pid (\d+) on [^,]*, node (\w+)\) (is ready|paints (.+))$")


def workers(log: str) -> list[dict]:
    """Every 'worker N (pid P ..., node X) is ready / paints NAME' line, in order."""
    found = []
    for line in log.splitlines():
        m = WORKER.search(line)
        if m:
            number, pid, node, what, name = m.groups()
            found.append({"number": int(number), "pid": int(pid), "node": node, "what": what,
                          "name": name})  # fmt: skip
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def write_config(root: Path, cluster: str, steps: int, extra: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hotfolder.toml").write_text(
        f"[daemon]\nsettle_seconds = 0.3\nrescan_seconds = 600\ncheckpoint_every = 5\n"
        f'cluster = "{cluster}"\n{extra}\n'
        f'[routes.paint]\nstyles = ["{STARRY}"]\nsize = 64\nsteps = {steps}\n'
    )


def drop(root: Path, names: list[str]) -> dict[str, bytes]:
    """Good photos, in this arrival order."""
    inbox = root / "inbox" / "paint"
    inbox.mkdir(parents=True, exist_ok=True)
    originals = {}
    first = time.time_ns() - 60 * 10**9
    for i, name in enumerate(names):
        originals[name] = image_bytes(cat(70 + i), "PNG")
        (inbox / name).write_bytes(originals[name])
        os.utime(inbox / name, ns=(first + i * 10**9,) * 2)
    return originals


def running(root: Path, min_step: int):
    """A job painted past min_step whose checkpoint the daemon holds, else None."""
    for job in jobs(root):
        checkpoint = root / ".hotfolder" / "checkpoints" / f"job-{job['id']}.npz"
        if job["state"] == "running" and job["step"] >= min_step and checkpoint.is_file():
            return job
    return None


def all_finished(root: Path, count: int) -> bool:
    rows = jobs(root)
    return len(rows) >= count and all(j["state"] in ("done", "failed") for j in rows)


def test_batch_over_two_workers_on_two_nodes(tmp_path, ray_cluster):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(("a.png", "b.png", "c.jpg", "d.png")):
        (photos / name).write_bytes(
            image_bytes(cat(70 + i), "JPEG" if name.endswith("jpg") else "PNG")
        )
    (photos / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "-v", "batch", str(photos), "-s", str(STARRY),
         "-o", str(out), "--size", "64", "--steps", "20", "--cluster", ray_cluster,
         "--progress", "none"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr  # one bad file
    assert sorted(os.listdir(out)) == ["a.png", "b.png", "c.png", "d.png"]
    for name in os.listdir(out):
        with Image.open(out / name) as img:
            img.load()
            assert max(img.size) == 64
    assert "4 painted, 0 already there, 1 failed" in run.stderr
    assert re.search(r"broken\.png: content image 'broken\.png': .*not an image", run.stderr)
    seen = workers(run.stderr)
    ready = {w["number"]: w["node"] for w in seen if w["what"] == "is ready"}
    assert len(ready) == 2 and len(set(ready.values())) == 2, run.stderr  # one per node
    painted_by = {w["number"] for w in seen if w["name"]}
    assert painted_by == {1, 2}, run.stderr
    assert "Traceback" not in run.stderr


def test_worker_killed_mid_job_its_job_is_resent(tmp_path, ray_cluster, watch):
    root = tmp_path / "studio"
    write_config(root, ray_cluster, steps=120)
    originals = drop(root, ["a.png", "b.png", "c.png"])
    daemon = watch(root)
    job = daemon.wait_for(lambda: running(root, 10), timeout=300, what="a job to be under way")
    painter = [w for w in workers((root / "hotfolder.log").read_text()) if w["name"] == job["name"]]
    victim = painter[-1]["pid"]
    os.kill(victim, signal.SIGKILL)

    daemon.wait_for(lambda: all_finished(root, 3), timeout=600, what="every file")
    log = (root / "hotfolder.log").read_text()
    assert f"died while painting {job['name']}" in log
    assert f"paints {job['name']} (resuming)" in log  # from the checkpoint it had sent
    assert not alive(victim)
    assert files_under(root / "outbox") == {f"paint/{n}" for n in originals}
    assert {
        rel: (root / "processed" / rel).read_bytes() for rel in files_under(root / "processed")
    } == {f"paint/{n}": data for n, data in originals.items()}
    for name in originals:
        assert log.count(f"painted paint/{name}") == 1
    assert [j["state"] for j in jobs(root)] == ["done"] * 3
    assert daemon.stop(signal.SIGTERM) == 0
    assert "Traceback" not in daemon.stderr()


def test_daemon_killed_mid_batch_resumes_without_loss_or_duplicate(tmp_path, ray_cluster, watch):
    root = tmp_path / "studio"
    write_config(root, ray_cluster, steps=100)
    originals = drop(root, ["a.png", "b.png", "c.png", "d.png"])
    inbox = root / "inbox" / "paint"
    jpeg = image_bytes(cat(120), "JPEG")
    bad = {"truncated.jpg": (jpeg[: len(jpeg) // 2], "damaged or truncated"),
           "notes.txt": (b"shopping list\n", "not an image")}  # fmt: skip
    for name, (data, _) in bad.items():
        (inbox / name).write_bytes(data)

    daemon = watch(root)
    daemon.wait_for(lambda: running(root, 10), timeout=300, what="a job to be under way")
    daemon.stop(signal.SIGKILL)
    started = [
        w["pid"] for w in workers((root / "hotfolder.log").read_text()) if w["what"] == "is ready"
    ]
    assert len(started) == 2
    # the workers belonged to the daemon: they stop with it rather than paint for nobody
    wait_until(lambda: not any(alive(p) for p in started), 120, "the workers to stop")
    for rel in files_under(root / "outbox"):
        assert not Path(rel).name.startswith("."), f"half-written {rel}"

    finish = subprocess.run(
        [sys.executable, "-m", "impasto.cli", "watch", str(root), "--once"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert finish.returncode == 0, finish.stderr
    log = (root / "hotfolder.log").read_text()
    assert "resuming from step" in log
    for name in originals:
        assert log.count(f"painted paint/{name}") == 1, name
    assert files_under(root / "outbox") == {f"paint/{n}" for n in originals}
    for rel in files_under(root / "outbox"):
        with Image.open(root / "outbox" / rel) as img:
            img.load()
    assert {
        rel: (root / "processed" / rel).read_bytes() for rel in files_under(root / "processed")
    } == {f"paint/{n}": data for n, data in originals.items()}
    assert files_under(root / "failed") == {f"paint/{n}" for n in bad} | {
        f"paint/{n}.error.txt" for n in bad
    }
    for name, (data, why) in bad.items():
        assert why in (root / "failed" / "paint" / f"{name}.error.txt").read_text()
        assert (root / "failed" / "paint" / name).read_bytes() == data
    assert sorted(j["state"] for j in jobs(root)) == ["done"] * 4 + ["failed"] * 2
    assert os.listdir(root / ".hotfolder" / "checkpoints") == []


def test_local_ray_is_started_and_stopped_with_the_daemon(tmp_path, watch):
    from tests.cluster.conftest import require_ray

    require_ray()
    short = Path(tempfile.mkdtemp(prefix="imp", dir="/tmp"))  # where the daemon's Ray lives
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(short)
    try:
        root = tmp_path / "studio"
        write_config(root, "local", steps=5, extra="workers = 1\n")
        originals = drop(root, ["a.png"])
        daemon = watch(root)
    finally:
        if old is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = old
    try:
        daemon.wait_for(lambda: all_finished(root, 1), timeout=900, what="the file")
        assert files_under(root / "outbox") == {f"paint/{n}" for n in originals}
        ray_dirs = [d for d in os.listdir(short) if d.startswith("ray")]
        assert len(ray_dirs) == 1  # the local Ray's own short folder
        assert daemon.stop(signal.SIGTERM) == 0
        assert not [d for d in os.listdir(short) if d.startswith("ray")]

        def ours() -> list[int]:
            pids = []
            for entry in os.listdir("/proc"):
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                except (OSError, ValueError):
                    continue
                if ray_dirs[0].encode() in cmd and alive(int(entry)):
                    pids.append(int(entry))
            return pids

        wait_until(lambda: not ours(), 60, "the local Ray's processes to stop")
    finally:
        import shutil

        shutil.rmtree(short, ignore_errors=True)


def test_a_local_ray_asks_for_a_token_and_listens_on_loopback_only():
    """`--cluster local`: token authentication on, the node at 127.0.0.1, and no Ray process
    listening on any other address (before issue 21: the GCS and raylets on every interface)."""
    from tests.cluster.conftest import require_ray

    require_ray()
    code = (
        "import ipaddress\n"
        "from impasto.cluster.connect import Connection, _driver_uses_token\n"
        "c = Connection('local')\n"
        "import psutil  # Ray's own copy, on the path once Ray is imported\n"
        "ours = {p.pid for p in psutil.Process().children(recursive=True)}\n"
        "heard = {ipaddress.ip_address(s.laddr.ip) for s in psutil.net_connections('inet')\n"
        "         if s.status == 'LISTEN' and s.pid in ours}\n"
        "nodes = sorted({n['NodeManagerAddress'] for n in c.ray.nodes()})\n"
        "lo = all((getattr(a, 'ipv4_mapped', None) or a).is_loopback for a in heard)\n"
        "print(_driver_uses_token(), nodes, bool(heard), lo)\n"
        "c.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "True ['127.0.0.1'] True True"
