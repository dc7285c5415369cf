"""forgetfs on its own: what it keeps at a power cut is what was made durable, nothing more."""

from __future__ import annotations

import os
import sqlite3


def sync_dir(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path, data: bytes, sync: bool) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        if sync:
            os.fsync(fh.fileno())


def test_a_synced_file_survives_and_an_unsynced_one_does_not(forgetfs):
    mnt = forgetfs.path
    write(mnt / "kept", b"kept", sync=True)
    write(mnt / "unsynced-data", b"lost", sync=False)
    sync_dir(mnt)  # both names are durable, only one file's data
    write(mnt / "unsynced-name", b"synced data", sync=True)  # its name never is
    forgetfs.cut()
    assert (mnt / "kept").read_bytes() == b"kept"
    assert (mnt / "unsynced-data").read_bytes() == b""  # torn: the name without its data
    assert not (mnt / "unsynced-name").exists()


def test_fdatasync_makes_data_durable_too(forgetfs):
    mnt = forgetfs.path
    with open(mnt / "f", "wb") as fh:
        fh.write(b"data")
        fh.flush()
        os.fdatasync(fh.fileno())
    sync_dir(mnt)
    forgetfs.cut()
    assert (mnt / "f").read_bytes() == b"data"


def test_data_written_after_the_last_fsync_is_dropped(forgetfs):
    mnt = forgetfs.path
    write(mnt / "f", b"version 1", sync=True)
    sync_dir(mnt)
    with open(mnt / "f", "r+b") as fh:
        fh.write(b"VERSION 2, longer")
    forgetfs.cut()
    assert (mnt / "f").read_bytes() == b"version 1"


def test_a_rename_reverts_without_a_directory_fsync_and_survives_with_one(forgetfs):
    mnt = forgetfs.path
    for name in ("a", "b"):
        write(mnt / f".{name}.tmp", name.encode(), sync=True)
    sync_dir(mnt)
    os.rename(mnt / ".a.tmp", mnt / "a")
    os.rename(mnt / ".b.tmp", mnt / "b")
    ino = os.stat(mnt / "b").st_ino
    sync_dir(mnt)
    os.rename(mnt / "b", mnt / "b2")  # not synced: reverts
    forgetfs.cut()
    assert sorted(os.listdir(mnt)) == ["a", "b"]
    assert (mnt / "b").read_bytes() == b"b" and os.stat(mnt / "b").st_ino == ino


def test_a_move_between_folders_is_durable_only_where_synced(forgetfs):
    mnt = forgetfs.path
    (mnt / "inbox").mkdir()
    (mnt / "done").mkdir()
    write(mnt / "inbox" / "cat", b"cat", sync=True)
    sync_dir(mnt / "inbox")
    sync_dir(mnt)
    os.link(mnt / "inbox" / "cat", mnt / "done" / "cat")
    os.unlink(mnt / "inbox" / "cat")
    sync_dir(mnt / "done")  # the inbox is not synced: the file is in both, one file
    forgetfs.cut()
    assert os.path.samefile(mnt / "inbox" / "cat", mnt / "done" / "cat")
    assert (mnt / "done" / "cat").read_bytes() == b"cat"


def test_a_folder_that_was_never_synced_into_its_parent_is_gone(forgetfs):
    mnt = forgetfs.path
    (mnt / "new").mkdir()
    write(mnt / "new" / "f", b"x", sync=True)
    sync_dir(mnt / "new")
    forgetfs.cut()
    assert os.listdir(mnt) == []


def test_sqlite_works_and_keeps_its_committed_rows(forgetfs):
    """The journal's own settings (hotfolder/journal.py): WAL, synchronous=FULL."""
    mnt = forgetfs.path
    (mnt / "db").mkdir()
    sync_dir(mnt)
    db = sqlite3.connect(mnt / "db" / "j.sqlite", isolation_level=None)
    assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (n INTEGER)")
    sync_dir(mnt / "db")  # the database file's own name (SQLite syncs the WAL's, not this one)
    for n in range(20):
        db.execute("INSERT INTO t VALUES (?)", (n,))
    db.execute("PRAGMA wal_checkpoint(FULL)")
    db.execute("INSERT INTO t VALUES (20)")
    # the power goes off with the connection open (nothing is closed cleanly)
    forgetfs.cut()
    db2 = sqlite3.connect(mnt / "db" / "j.sqlite")
    assert db2.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [r[0] for r in db2.execute("SELECT n FROM t ORDER BY n")] == list(range(21))
    db2.close()
    db.close()


def test_a_cut_may_keep_what_the_kernel_wrote_back(forgetfs):
    mnt = forgetfs.path
    write(mnt / "f", b"unsynced", sync=False)
    forgetfs.cut(written_back=1.0)  # everything happened to reach the disk
    assert (mnt / "f").read_bytes() == b"unsynced"
