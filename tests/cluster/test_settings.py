"""What needs no running cluster: Ray stays optional, its absence is one clear line, and the
cluster settings of the hot folder are checked like the rest of its config."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from impasto.hotfolder.config import ConfigError, parse_daemon

NO_RAY = "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_nothing_imports_ray_unless_a_cluster_is_asked_for():
    run = python(
        "import sys, impasto, impasto.cli, impasto.commands.batch\n"
        "import hotfolder.daemon, hotfolder.cli\n"
        "import impasto.cluster, impasto.cluster.connect\n"
        "print('ray' in sys.modules)"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


@pytest.mark.parametrize(
    "command",
    [
        ["batch", "{cat}", "-s", "{starry}", "-o", "{out}", "--cluster", "local"],
        ["watch", "{root}", "--style", "{starry}", "--cluster", "local", "--once"],
    ],
)
def test_without_ray_a_cluster_is_one_line_naming_the_extra(tmp_path, command):
    from tests.conftest import CAT, STARRY

    (tmp_path / "root").mkdir()
    args = [
        a.format(cat=CAT, starry=STARRY, out=tmp_path / "out", root=tmp_path / "root")
        for a in command
    ]
    run = python(NO_RAY + f"from impasto.cli import main; sys.exit(main({args!r}))")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines == [
        "impasto: error: painting on a cluster needs Ray, which is not installed: "
        "pip install 'impasto[cluster]'"
    ], run.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_cluster_settings_in_the_config():
    d = parse_daemon({"cluster": " head:6379 ", "workers": 3, "worker_threads": 2}, "here")
    assert (d.cluster, d.workers, d.worker_threads) == ("head:6379", 3, 2)
    assert parse_daemon({}, "here").cluster == ""  # default: paint in the daemon's process
    for bad, message in [
        ({"cluster": 6379}, "cluster must be an address"),
        ({"workers": -1}, "workers must be 0 or more"),
        ({"worker_threads": 0}, "worker_threads must be 1 or more"),
        ({"workers": 1.5}, "workers must be a whole number"),
        ({"worker_treads": 2}, "did you mean 'worker_threads'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_daemon(bad, "here")


def test_status_shows_every_job_under_way(tmp_path):
    from impasto.hotfolder.journal import Identity, Journal
    from impasto.hotfolder.layout import Layout
    from impasto.hotfolder.status import format_status, gather

    layout = Layout(tmp_path)
    layout.ensure(["paint"])
    journal = Journal(layout.journal)
    for n, name in enumerate(("a.png", "b.png", "c.png"), 1):
        journal.enqueue("paint", name, Identity(1, n, 1, 1))
    journal.start(1, "a.png", 40)
    journal.progress(1, 10, 40, 75.0)
    journal.start(2, "b.png", 40)  # a second cluster worker's job
    journal.progress(2, 30, 40, 15.0)
    journal.close()
    info = gather(layout)
    assert [j["name"] for j in info["under_way"]] == ["a.png", "b.png"]
    text = format_status(info)
    assert "paint/a.png step 10/40 (25%), about 1:15 left" in text
    assert "paint/b.png step 30/40 (75%), about 0:15 left" in text
    assert "queue: 1 waiting: paint/c.png" in text


def test_an_address_nobody_answers_at_is_one_line_at_once():
    import socket

    from impasto.cluster.connect import ClusterError, check_reachable

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        ClusterError, match=rf"cannot reach the Ray cluster at '127.0.0.1:{port}': "
    ):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ClusterError, match="give HOST:PORT"):
        check_reachable("head-node")
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"127.0.0.1:{listening.getsockname()[1]}")  # answers: no error


def test_auto_trusts_the_address_file_only_when_it_is_this_users(tmp_path, monkeypatch):
    """`ray start` leaves its address in RAY_TMPDIR/ray/ray_current_cluster, a folder that
    belongs to whoever made it first: a file others may write, or another user's, is refused."""
    pytest.importorskip("ray")
    from impasto.cluster.connect import ClusterError, auto_address

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    planted = tmp_path / "ray" / "ray_current_cluster"
    planted.parent.mkdir()
    with pytest.raises(ClusterError, match="has joined no Ray cluster"):
        auto_address()
    planted.write_text("203.0.113.9:6379\n")
    planted.chmod(0o666)  # as a file planted in a shared /tmp/ray may be
    with pytest.raises(ClusterError, match="not trusting .*ray_current_cluster"):
        auto_address()
    planted.chmod(0o644)
    assert auto_address() == "203.0.113.9:6379"  # positive control: ours, only we write it
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # now it is another user's
    with pytest.raises(ClusterError, match="belongs to another user"):
        auto_address()
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")  # the user's own setting wins, as in Ray
    assert auto_address() == "head:6379"


class FakeRay:
    """Enough of the ray module for Connection, with no Ray started."""

    def __init__(self):
        self.initialized = False

    def init(self, address, **options):
        self.initialized = True

    def is_initialized(self):
        return self.initialized

    def shutdown(self):
        self.initialized = False

    def cluster_resources(self):
        return {"CPU": 2.0}


def test_a_cluster_that_takes_drivers_without_a_token_is_refused(monkeypatch, caplog):
    from impasto.cluster import connect

    fake = FakeRay()
    monkeypatch.setattr(connect, "require_ray", lambda: None)
    monkeypatch.setattr(connect, "check_reachable", lambda address: None)
    monkeypatch.setattr(connect, "import_ray", lambda: fake)
    monkeypatch.delenv(connect.ALLOW_NO_TOKEN, raising=False)
    monkeypatch.setattr(connect, "_driver_uses_token", lambda: False)
    with pytest.raises(connect.ClusterError, match="let this process in without a token"):
        connect.Connection("head:6379")
    assert not fake.initialized  # left again at once
    monkeypatch.setenv(connect.ALLOW_NO_TOKEN, "1")  # the opt-out: joined, with a warning
    connect.Connection("head:6379").close()
    assert "joined anyway" in caplog.text
    monkeypatch.delenv(connect.ALLOW_NO_TOKEN)
    monkeypatch.setattr(connect, "_driver_uses_token", lambda: True)  # positive control
    connection = connect.Connection("head:6379")
    assert connection.resources() == {"CPU": 2.0}
    connection.close()
