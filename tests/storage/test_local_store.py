"""LocalStore specifics: files on disk, temp-file atomicity, fsync, leftover cleanup."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tuneyard.storage import LocalStore, ObjectNotFound
from tuneyard.storage.local import TEMP_GRACE_SECONDS


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def make_old(path: Path) -> None:
    old = time.time() - TEMP_GRACE_SECONDS - 60
    os.utime(path, (old, old))


def test_objects_are_plain_files(tmp_path):
    store = LocalStore(tmp_path)
    store.put("ckpt/3/model.safetensors", [b"weights"])
    assert (tmp_path / "ckpt" / "3" / "model.safetensors").read_bytes() == b"weights"
    assert files_under(tmp_path) == ["ckpt/3/model.safetensors"]


def test_put_writes_a_temp_file_in_the_target_folder_then_renames(tmp_path):
    store = LocalStore(tmp_path)
    during = {}

    def observed():
        yield b"part one"
        during["files"] = files_under(tmp_path)
        yield b"part two"

    store.put("a/b/obj", observed())
    [temp] = during["files"]
    assert temp.startswith("a/b/.tmp-")
    assert files_under(tmp_path) == ["a/b/obj"]


def test_failed_put_leaves_no_temp_file(tmp_path):
    store = LocalStore(tmp_path)

    def failing():
        yield b"x" * 1000
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        store.put("a/obj", failing())
    assert files_under(tmp_path) == []
    assert store.list() == []
    assert not store.exists("a/obj")


def test_put_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store.put("obj", [b"durable"])
    assert synced.index("file") < synced.index("dir")  # data first, then the rename


def test_list_skips_temp_files_and_cleanup_removes_old_ones(tmp_path):
    store = LocalStore(tmp_path)
    store.put("job/a", [b"1"])
    leftovers = [tmp_path / ".tmp-top", tmp_path / "job" / ".tmp-abc123"]
    for path in leftovers:
        path.write_bytes(b"half a checkpoint")
        make_old(path)
    live = tmp_path / "job" / ".tmp-live"
    live.write_bytes(b"another process is writing this right now")
    assert store.list() == ["job/a"]
    assert store.list("job") == ["job/a"]

    # Within the grace period a temp file may be a concurrent writer's: kept.
    assert store.cleanup_temp() == 2
    assert files_under(tmp_path) == ["job/.tmp-live", "job/a"]
    assert store.cleanup_temp(older_than=0) == 1
    assert files_under(tmp_path) == ["job/a"]


def test_opening_a_store_removes_leftovers(tmp_path):
    (tmp_path / "x").mkdir()
    stale = tmp_path / "x" / ".tmp-crashed"
    stale.write_bytes(b"partial")
    make_old(stale)
    (tmp_path / "x" / "kept").write_bytes(b"object")
    store = LocalStore(tmp_path)
    assert files_under(tmp_path) == ["x/kept"]
    assert store.read_bytes("x/kept") == b"object"


def test_root_is_created_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = LocalStore(Path("relative/store"))
    assert store.root == tmp_path / "relative" / "store"
    assert store.root.is_dir()


def test_delete_prefix_removes_emptied_folders(tmp_path):
    store = LocalStore(tmp_path)
    store.put("jobs/tr-1/ckpt/1/model", [b"m"])
    store.put("jobs/tr-1/ckpt/2/model", [b"m"])
    store.put("jobs/tr-2/model", [b"m"])
    assert store.delete_prefix("jobs/tr-1") == 2
    assert not (tmp_path / "jobs" / "tr-1").exists()
    assert (tmp_path / "jobs" / "tr-2" / "model").exists()
    # A folder left behind would block storing an object under that key.
    store.put("jobs/tr-1", [b"now a file"])
    assert store.read_bytes("jobs/tr-1") == b"now a file"


def test_delete_prefix_keeps_folders_with_in_flight_writes(tmp_path):
    store = LocalStore(tmp_path)
    store.put("jobs/tr-1/a", [b"1"])
    (tmp_path / "jobs" / "tr-1" / ".tmp-writing").write_bytes(b"...")
    assert store.delete_prefix("jobs/tr-1") == 1
    assert files_under(tmp_path) == ["jobs/tr-1/.tmp-writing"]


def test_object_removed_between_check_and_read(tmp_path):
    store = LocalStore(tmp_path)
    store.put("gone", [b"data"])
    chunks = store.open_range("gone")
    store.delete("gone")
    with pytest.raises(ObjectNotFound):
        next(chunks)


def test_adopt_file_links_on_the_same_filesystem_and_copies_otherwise(tmp_path, monkeypatch):
    import os

    from tuneyard.storage.local import LocalStore

    store = LocalStore(tmp_path / "store")
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 1000)
    info = store.adopt_file("a/w.bin", source)
    assert store.local_path("a/w.bin").stat().st_ino == source.stat().st_ino
    assert (info.size, info.sha256) == (1000, store.put("b", b"w" * 1000).sha256)
    store.adopt_file("a/w.bin", source)  # replacing an object is fine, too

    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    copied = store.adopt_file("a/c.bin", source, sha256="ignored-when-copying")
    assert store.local_path("a/c.bin").stat().st_ino != source.stat().st_ino
    assert copied.sha256 == info.sha256 and store.read_bytes("a/c.bin") == b"w" * 1000
    assert store.list("a") == ["a/c.bin", "a/w.bin"]
