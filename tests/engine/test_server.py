"""The local engine server as `impasto stylize` meets it: jobs from several clients painted
(and only by the server), Ctrl-C and kill -9 of a client, a socket that is not private refused,
the server's stop and idle-out, autostart, and the picture still made when there is no server
or it dies mid-job. Tiny pictures, few steps: the server's start-up (TensorFlow, weights) is
most of the time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from impasto import remote, server
from impasto.config import engine_settings
from impasto.errors import InputError
from impasto.host import EngineHost
from impasto.images import read_settings
from impasto.job import StyleJob, check_job
from impasto.presets import apply_overrides, list_presets, load_preset, recipe_from_dict
from tests.conftest import CAT, STARRY, WAVE
from tests.engine.test_host import StandInEngine

pytestmark = pytest.mark.usefixtures("weights_available")


def impasto(*args, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "impasto.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,
    )


def stylize(out: Path, env: dict, steps: int = 3, style=STARRY) -> subprocess.Popen:
    args = ["stylize", CAT, style, "-o", out, "--size", 64, "--steps", steps, "--progress", "json"]
    return impasto(*args, env=env)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, list[dict], str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err


def first_progress(proc: subprocess.Popen) -> dict:
    """Read the client's JSON lines until its first progress event (the job is painting)."""
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "progress":
            return event
    raise AssertionError(f"no progress; stderr: {proc.stderr.read()}")


def status(env: dict) -> dict | None:
    """The server's answer to "status" (None: none runs), asked with the clients' environment."""
    saved = os.environ["XDG_RUNTIME_DIR"]
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]
    try:
        return server.ask("status")
    finally:
        os.environ["XDG_RUNTIME_DIR"] = saved


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_server(run_dir: Path) -> dict:
    """`impasto engine start` with its socket in run_dir; the environment its clients use."""
    run_dir.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run_dir)}
    proc = impasto("engine", "start", "--idle", 5, env=env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "ready: engine server pid" in out, err
    return env


def stop_server(env: dict) -> None:
    """`impasto engine stop`, and kill -9 if it has not gone."""
    info = status(env)
    subprocess.run([sys.executable, "-m", "impasto.cli", "engine", "stop"], env=env, timeout=60)
    if info is not None:
        try:
            os.kill(info["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A server the module's tests share; the clients' environment."""
    env = start_server(tmp_path_factory.mktemp("run"))
    try:
        yield env
    finally:
        stop_server(env)


def test_jobs_of_two_clients_at_once_are_both_painted_by_the_server(tmp_path, warm):
    done_before = status(warm)["done"]
    outs = [tmp_path / "a.png", tmp_path / "b.png"]
    procs = [stylize(outs[0], warm), stylize(outs[1], warm, style=WAVE)]
    for proc, out in zip(procs, outs, strict=True):
        code, events, err = finish(proc)
        assert code == 0, err
        assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "done"
        assert Image.open(out).size == (64, 43)
        assert os.stat(out).st_uid == os.getuid()
    assert status(warm)["done"] == done_before + 2  # the server painted both


def test_evolution_snapshots_come_back_from_the_server(tmp_path, warm):
    done_before = status(warm)["done"]
    out = tmp_path / "out.png"
    args = ["stylize", CAT, STARRY, "-o", out, "--size", 64, "--steps", 3, "--save-every", 1]
    code, _, err = finish(impasto(*args, "--progress", "json", env=warm))
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "out_evolution").iterdir())
    assert names == ["step_00001.png", "step_00002.png", "step_00003.png"]
    assert status(warm)["done"] == done_before + 1


def test_ctrl_c_in_the_client_cancels_its_job_on_the_server(tmp_path, warm):
    out = tmp_path / "out.png"
    proc = stylize(out, warm, steps=100_000)
    first_progress(proc)
    proc.send_signal(signal.SIGINT)
    code, events, err = finish(proc, timeout=120)
    assert code == 130, err
    assert events[-1]["event"] == "done" and events[-1]["cancelled"]
    assert Image.open(out).size == (64, 43)  # the best so far, written by the client
    wait_until(lambda: not status(warm)["running"], 30, "the server's engine to be free")


def test_the_server_survives_a_client_killed_with_9_and_paints_the_next_job(tmp_path, warm):
    pid = status(warm)["pid"]
    proc = stylize(tmp_path / "killed.png", warm, steps=100_000)
    first_progress(proc)
    proc.kill()
    proc.wait()
    started = time.monotonic()
    code, events, err = finish(stylize(tmp_path / "next.png", warm), timeout=120)
    assert code == 0, err
    assert time.monotonic() - started < 60  # not behind 100 000 steps: the job was cancelled
    assert Image.open(tmp_path / "next.png").size == (64, 43)
    assert not (tmp_path / "killed.png").exists()
    assert status(warm)["pid"] == pid


def half_mask(path: Path) -> Path:
    """A mask of the cat photo's shape: its left half white."""
    w, h = Image.open(CAT).size
    mask = Image.new("L", (w, h), 0)
    mask.paste(255, (0, 0, w // 2, h))
    mask.save(path)
    return path


def test_a_job_with_masks_is_painted_by_the_server_as_alone(tmp_path, warm):
    sea = half_mask(tmp_path / "sea.png")
    args = ["stylize", CAT, STARRY, WAVE, "--mask", "none", "--mask", sea, "--size", 64]
    args += ["--steps", 2, "--progress", "json"]
    done_before = status(warm)["done"]
    code, _, err = finish(impasto(*args, "-o", tmp_path / "server.png", env=warm))
    assert code == 0, err
    assert status(warm)["done"] == done_before + 1  # the server painted it
    code, _, err = finish(impasto(*args, "-o", tmp_path / "alone.png", env=dict(os.environ)))
    assert code == 0, err
    on_server, alone = (read_settings(tmp_path / n) for n in ("server.png", "alone.png"))
    assert on_server["masks"] == alone["masks"] == [None, "sea.png"]
    assert on_server == alone


def test_the_server_takes_a_mask_only_with_its_bytes(tmp_path):
    """Masks travel as bytes after the styles'; a server that finds mask names without their
    bytes (or, as a server that does not know masks, more bytes than images) refuses the
    message, so a job is never painted without its masks."""
    images = [CAT.read_bytes(), STARRY.read_bytes()]
    message = {
        "content": str(CAT),
        "styles": [[str(STARRY), 1.0]],
        "recipe": load_preset("classic").to_dict(),
        "size": 64,
        "seed": 0,
        "masks": ["/home/me/sky.png"],
    }
    with pytest.raises(server.ProtocolError, match="one blob per image"):
        server._checked_job(message, images)
    checked = server._checked_job(message, [*images, half_mask(tmp_path / "m.png").read_bytes()])
    assert checked.settings()["masks"] == ["sky.png"]
    assert checked.masks[0].image.getpixel((0, 0)) == 255


def test_a_socket_or_folder_others_can_open_is_refused(tmp_path, monkeypatch):
    run = tmp_path / "r"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    folder = server.make_run_dir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(folder / server.SOCKET))
    listener.listen(1)
    with listener:
        os.chmod(folder / server.SOCKET, 0o600)
        server.connect().close()  # the positive control: private, it is used
        os.chmod(folder / server.SOCKET, 0o666)
        with pytest.raises(server.NotPrivate, match="open to other users .mode 666"):
            server.connect()
        os.chmod(folder / server.SOCKET, 0o600)
        os.chmod(folder, 0o755)
        with pytest.raises(server.NotPrivate, match="folder .* open to other users"):
            server.connect()
        os.chmod(folder, 0o700)
        monkeypatch.setattr(server.os, "getuid", lambda: os.geteuid() + 1)
        with pytest.raises(server.NotPrivate, match="belongs to another user"):
            server.connect()
        # `impasto stylize` then says why and paints alone.
        checked = check_job(StyleJob(content=str(CAT), styles=[str(STARRY)], size=64))
        with pytest.raises(remote.Unavailable, match="not using the engine server: .*another"):
            remote.stylize(checked, print, print, threading.Event())


def test_the_server_refuses_a_peer_of_another_user(monkeypatch):
    """SO_PEERCRED: the server asks the kernel who connected (here it pretends to run as
    another user, so its own user's connection is a stranger's)."""
    srv = server.Server(EngineHost(StandInEngine()), idle_minutes=0)
    for uid, answered in ((os.getuid(), True), (os.getuid() + 1, False)):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        monkeypatch.setattr(server.os, "getuid", lambda uid=uid: uid)
        thread = threading.Thread(target=srv._client, args=(theirs,), daemon=True)
        thread.start()
        with ours, ours.makefile("rb") as reader:
            try:
                server.send(ours, {"op": "status"})
                got = server.receive(reader)
            except (BrokenPipeError, ConnectionResetError):  # hung up on
                got = None
        thread.join(10)
        assert (got is not None and got[0]["event"] == "status") == answered


def test_the_server_stops_when_asked_or_when_idle(tmp_path, monkeypatch):
    (tmp_path / "r").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "r"))
    folder = server.make_run_dir()
    for idle, stop in ((0, True), (0.02, False)):  # 0: never idles out; 0.02 min: 1.2 s
        srv = server.Server(EngineHost(StandInEngine()), idle_minutes=idle)
        thread = threading.Thread(target=srv.serve, args=(folder,), daemon=True)
        thread.start()
        answer = wait_until(lambda: server.ask("status"), 10, "the server to answer")
        assert answer["pid"] == os.getpid() and answer["idle_minutes"] == idle
        if stop:
            assert server.ask("stop")["event"] == "status"
        thread.join(30)
        assert not thread.is_alive() and not (folder / server.SOCKET).exists()
        assert server.ask("status") is None


def test_a_client_never_finds_the_socket_open_while_the_server_starts(tmp_path, monkeypatch):
    """The worst moment: a client that looks just as the server makes its socket private (the
    socket was bound 0755 under the umask; a client checking then was refused as "open to other
    users", and CI failed once). It finds no server yet, and the next look finds it ready."""
    (tmp_path / "r").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "r"))
    folder = server.make_run_dir()
    seen, real_chmod = [], os.chmod

    def chmod_with_a_client_looking(path, mode, **kw):
        try:
            seen.append(server.ask("status"))
        except server.NotPrivate as exc:
            seen.append(exc)
        return real_chmod(path, mode, **kw)

    monkeypatch.setattr(server.os, "chmod", chmod_with_a_client_looking)
    srv = server.Server(EngineHost(StandInEngine()), idle_minutes=0)
    thread = threading.Thread(target=srv.serve, args=(folder,), daemon=True)
    thread.start()
    try:
        answer = wait_until(lambda: server.ask("status"), 10, "the server to answer")
    finally:
        srv.stopping.set()
        thread.join(30)
    assert seen == [None]  # looked at the worst moment: no server yet, not a refusal
    assert answer["pid"] == os.getpid()  # and once ready, it answers


def test_a_second_server_gives_way_before_loading_anything(tmp_path, monkeypatch):
    """Two commands that autostart at once start two servers: the one that finds the lock
    taken returns at once (its starter then waits for the other) instead of loading first."""
    import fcntl

    (tmp_path / "r").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "r"))
    folder = server.make_run_dir()
    monkeypatch.setattr("impasto.engine.weights.verified_path", lambda: pytest.fail("it loaded"))
    with open(folder / server.LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert server.serve(idle_minutes=1) == server.ANOTHER


def test_without_a_server_the_command_paints_alone_quietly(tmp_path):
    out = tmp_path / "out.png"
    code, events, err = finish(stylize(out, dict(os.environ)))
    assert code == 0, err
    assert events[-1]["event"] == "done" and Image.open(out).size == (64, 43)
    assert err == ""  # nothing to say: no server is the usual case


@pytest.mark.slow
def test_autostart_and_a_server_killed_mid_job_the_picture_is_still_made(tmp_path):
    """[engine] autostart starts the server on demand; killed during the job, the client
    paints the job alone."""
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "impasto" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[engine]\nautostart = true\nidle_minutes = 2\n")
    env = dict(os.environ)
    out = tmp_path / "out.png"
    proc = stylize(out, env, steps=40)
    try:
        first_progress(proc)  # painted by the server it started
        started = status(env)
        assert started["idle_minutes"] == 2 and started["running"]
        os.kill(started["pid"], signal.SIGKILL)
        code, events, err = finish(proc)
    finally:
        stop_server(env)
    assert code == 0, err
    assert "the engine server went away during the job" in err and "painting here" in err
    assert events[-1]["event"] == "done" and not events[-1]["cancelled"]
    assert Image.open(out).size == (64, 43)


def test_the_server_gets_the_clients_recipe_exactly():
    """The recipe travels as JSON and is checked again there: every shipped preset, with
    overrides, comes back equal (the same picture as a run alone)."""
    for name in [info.name for info in list_presets()]:
        recipe = apply_overrides(load_preset(name), {"steps": 7, "style_strength": 1.7})
        assert recipe_from_dict(json.loads(json.dumps(recipe.to_dict())), "sent") == recipe


def test_engine_settings_are_checked(tmp_path):
    path = tmp_path / "config.toml"
    assert engine_settings(path).autostart is False  # no file: the defaults
    path.write_text("[engine]\nautostart = true\nidle_minutes = 0\n")
    assert engine_settings(path) == type(engine_settings(path))(autostart=True, idle_minutes=0)
    path.write_text('[engine]\nautostart = "yes"\n')
    with pytest.raises(InputError, match="autostart must be true or false"):
        engine_settings(path)
    path.write_text("[engine]\nidle = 3\n")
    with pytest.raises(InputError, match="unknown key 'idle'"):
        engine_settings(path)


def test_an_editor_plugins_job_is_painted_by_the_server(tmp_path, warm, monkeypatch):
    """The Krita and GIMP plug-ins run `impasto stylize` from the editor's own Python, with its
    interpreter settings in the environment: the server still paints their job."""
    from impasto.plugin import client
    from tests.plugin.helpers import IMPASTO

    for key, value in {**warm, "PYTHONHOME": "/opt/editor/python", "PYTHONPATH": "/x"}.items():
        monkeypatch.setenv(key, value)
    done_before = status(warm)["done"]
    settings = client.StyleSettings(styles=[str(STARRY)], size=64, steps=2)
    done = client.run_job([str(IMPASTO)], str(CAT), str(tmp_path / "layer.png"), settings)
    assert Image.open(done.output).size == (64, 43)
    assert status(warm)["done"] == done_before + 1
