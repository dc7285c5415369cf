"""File operations on user files (unique names, moves that never replace), the journal's
bookkeeping, the single-daemon lock and --status."""

from __future__ import annotations

import os

import pytest

from impasto.hotfolder.daemon import AlreadyRunning, exclusive, running_pid
from impasto.hotfolder.journal import Identity, Journal
from impasto.hotfolder.layout import Layout, move_no_replace, remove_partial_writes, unique_name
from impasto.hotfolder.status import format_status, gather


def test_unique_name(tmp_path):
    assert unique_name(tmp_path, "cat.png") == "cat.png"
    (tmp_path / "cat.png").write_bytes(b"1")
    (tmp_path / "cat-2.png").write_bytes(b"2")
    assert unique_name(tmp_path, "cat.png") == "cat-3.png"
    assert unique_name(tmp_path, "cat.png", taken={"cat-3.png"}.__contains__) == "cat-4.png"
    assert unique_name(tmp_path, "README") == "README"


def test_move_never_replaces(tmp_path):
    (tmp_path / "a").write_bytes(b"new")
    (tmp_path / "b").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        move_no_replace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"old" and (tmp_path / "a").exists()


def test_move_takes_a_symlink_as_itself(tmp_path):
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    (tmp_path / "out").mkdir()
    move_no_replace(tmp_path / "link", tmp_path / "out" / "link")
    assert os.readlink(tmp_path / "out" / "link") == str(tmp_path / "target")
    assert not os.path.lexists(tmp_path / "link")


def test_remove_partial_writes_only_touches_the_named_files(tmp_path):
    for name in (".cat.png.a1b2.tmp", ".dog.png.c3d4.tmp", "cat.png", ".cat.png"):
        (tmp_path / name).write_bytes(b"x")
    assert remove_partial_writes(tmp_path, {"cat.png"}) == 1
    assert sorted(os.listdir(tmp_path)) == [".cat.png", ".dog.png.c3d4.tmp", "cat.png"]


def test_journal_enqueues_a_name_once_while_it_is_under_way(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    ident = Identity(1, 2, 3, 4)
    first = journal.enqueue("paint", "a.png", ident)
    assert first is not None
    assert journal.enqueue("paint", "a.png", Identity(1, 9, 3, 4)) is None
    assert journal.knows("paint", "a.png", Identity(1, 9, 3, 4))
    journal.start(first, "a.png", 3)
    journal.finishing(first, "a.png")
    journal.finished(first, "done")
    assert not journal.knows("paint", "a.png", ident)  # moved away: the same name may come again
    assert journal.enqueue("paint", "a.png", ident) is not None
    journal.close()


def test_journal_remembers_finished_files_it_could_not_move(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    ident = Identity(1, 2, 3, 4)
    job = journal.enqueue("paint", "a.png", ident)
    journal.finished(job, "done", "could not be moved", left=True)
    assert journal.knows("paint", "a.png", ident)  # not painted again and again
    assert not journal.knows("paint", "a.png", Identity(1, 5, 3, 4))  # but a new file is
    journal.close()


def test_only_one_daemon_per_folder(tmp_path):
    layout = Layout(tmp_path)
    assert running_pid(layout) is None
    with exclusive(layout):
        assert running_pid(layout) == os.getpid()
        with pytest.raises(AlreadyRunning, match=f"already running on .* \\(pid {os.getpid()}\\)"):
            with exclusive(layout):
                pass
    assert running_pid(layout) is None


def test_status_from_the_journal(tmp_path):
    layout = Layout(tmp_path)
    layout.ensure(["paint"])
    journal = Journal(layout.journal)
    a = journal.enqueue("paint", "a.png", Identity(1, 1, 1, 1))
    journal.enqueue("paint", "b.png", Identity(1, 2, 1, 1))
    c = journal.enqueue("paint", "c.png", Identity(1, 3, 1, 1))
    journal.start(a, "a.png", 40)
    journal.progress(a, 10, 40, 75.0)
    journal.failing(c, "c.png", "content image 'c.png': the file is empty (0 bytes)")
    journal.finished(c, "failed")
    journal.close()
    info = gather(layout)
    assert info["current"]["name"] == "a.png" and info["current"]["step"] == 10
    assert [q["name"] for q in info["queue"]] == ["b.png"]
    assert (info["done"], info["failed"], info["running"]) == (0, 1, False)
    text = format_status(info)
    assert "paint/a.png step 10/40 (25%), about 1:15 left" in text
    assert "queue: 1 waiting: paint/b.png" in text
    assert "failed/paint/c.png: content image 'c.png': the file is empty (0 bytes)" in text


def test_status_without_a_journal(tmp_path):
    from impasto.errors import ImpastoError

    with pytest.raises(ImpastoError, match="no hot-folder journal here yet"):
        gather(Layout(tmp_path))
