"""The ArtifactStore contract, run against every implementation (see conftest `store`)."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest

from tuneyard.storage import CHUNK_SIZE, LocalStore, ObjectInfo, ObjectNotFound

BIG = bytes(range(256)) * (CHUNK_SIZE // 256 * 2) + b"tail-bytes"  # 2 MiB + 10: three chunks


class BoundedReader(io.RawIOBase):
    """A file-like object that fails if anyone asks for all of it at once."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.reads: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > CHUNK_SIZE:
            raise AssertionError(f"unbounded read({size}): the store slurped the stream")
        self.reads.append(size)
        return self._inner.read(size)


def test_put_returns_object_info(store):
    info = store.put("a/b.bin", [b"hello ", b"world"])
    assert info == ObjectInfo(
        key="a/b.bin", size=11, sha256=hashlib.sha256(b"hello world").hexdigest()
    )
    assert store.read_bytes("a/b.bin") == b"hello world"
    assert store.size("a/b.bin") == 11
    assert store.exists("a/b.bin")


def test_put_streams_file_objects_in_bounded_chunks(store):
    reader = BoundedReader(BIG)
    info = store.put("big.bin", reader)
    assert len(reader.reads) >= 3
    assert info.size == len(BIG)
    assert info.sha256 == hashlib.sha256(BIG).hexdigest()
    assert store.read_bytes("big.bin") == BIG


def test_put_accepts_bytes_and_generators(store):
    store.put("one", b"plain bytes")
    store.put("two", (part for part in [b"", b"gen", b"", b"erated"]))
    assert store.read_bytes("one") == b"plain bytes"
    assert store.read_bytes("two") == b"generated"


def test_put_replaces_existing_object(store):
    store.put("k", [b"old contents, longer"])
    store.put("k", [b"new"])
    assert store.read_bytes("k") == b"new"
    assert store.size("k") == 3


def test_empty_object(store):
    info = store.put("empty", [])
    assert info.size == 0 and info.sha256 == hashlib.sha256(b"").hexdigest()
    assert store.read_bytes("empty") == b""
    assert list(store.open_range("empty")) == []
    assert store.exists("empty")


def test_put_file_and_download_to(store, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(BIG)
    info = store.put_file("ckpt/1/model.bin", source)
    assert info.sha256 == hashlib.sha256(BIG).hexdigest()
    target = tmp_path / "out" / "nested" / "copy.bin"
    store.download_to("ckpt/1/model.bin", target)
    assert target.read_bytes() == BIG
    assert not [p.name for p in target.parent.iterdir() if p.name != "copy.bin"]


def test_open_range_chunks_and_bounds(store):
    store.put("big", [BIG])
    chunks = list(store.open_range("big"))
    assert b"".join(chunks) == BIG
    assert len(chunks) == 3 and all(len(c) <= CHUNK_SIZE for c in chunks)
    assert b"".join(store.open_range("big", start=5, end=9)) == BIG[5:10]
    assert b"".join(store.open_range("big", start=CHUNK_SIZE - 3)) == BIG[CHUNK_SIZE - 3 :]
    across = b"".join(store.open_range("big", start=CHUNK_SIZE - 2, end=CHUNK_SIZE + 1))
    assert across == BIG[CHUNK_SIZE - 2 : CHUNK_SIZE + 2]
    # An end past the object is clamped, as in HTTP.
    assert b"".join(store.open_range("big", start=len(BIG) - 4, end=10**12)) == b"ytes"
    assert b"".join(store.open_range("big", start=len(BIG))) == b""
    assert b"".join(store.open_range("big", start=7, end=7)) == BIG[7:8]


@pytest.mark.parametrize(
    ("start", "end"), [(-1, None), (3, 2), (len(BIG) + 1, None), (len(BIG) + 1, len(BIG) + 5)]
)
def test_open_range_rejects_bad_ranges_on_call(store, start, end):
    store.put("big", [BIG])
    with pytest.raises(ValueError):
        store.open_range("big", start=start, end=end)


def test_missing_key_raises_object_not_found(store, tmp_path):
    store.put("present/x", [b"1"])
    for call in (
        lambda: store.size("absent"),
        lambda: store.read_bytes("absent"),
        lambda: store.open_range("absent"),  # raised on call, not on first next()
        lambda: store.download_to("absent", tmp_path / "never"),
        lambda: store.size("present"),  # a folder is not an object
        lambda: store.size("present/x/deeper"),  # nor is a path through an object
    ):
        with pytest.raises(ObjectNotFound) as caught:
            call()
        assert isinstance(caught.value, KeyError)
    assert not (tmp_path / "never").exists()
    assert not store.exists("absent")
    assert not store.exists("present")


def test_list_is_sorted_and_scoped_to_folders(store):
    for key in ["b/2", "a/1", "ab/3", "a/sub/4", "a1", "c"]:
        store.put(key, [key.encode()])
    assert store.list() == ["a/1", "a/sub/4", "a1", "ab/3", "b/2", "c"]
    assert store.list("") == store.list()
    # 'a' is a folder prefix: 'ab/3' and 'a1' are not under it.
    assert store.list("a") == ["a/1", "a/sub/4"]
    assert store.list("a/") == ["a/1", "a/sub/4"]
    assert store.list("a/sub") == ["a/sub/4"]
    assert store.list("nothing/here") == []
    assert store.list("c") == []  # an object, not a folder


def test_delete_and_delete_prefix(store):
    for key in ["job/tr-1/a", "job/tr-1/b/c", "job/tr-10/a", "job/tr-1x"]:
        store.put(key, [b"x"])
    store.delete("job/tr-1/a")
    store.delete("job/tr-1/a")  # missing is fine
    store.delete("never/was")
    assert not store.exists("job/tr-1/a")
    assert store.delete_prefix("job/tr-1") == 1
    assert store.list() == ["job/tr-10/a", "job/tr-1x"]
    assert store.delete_prefix("job/") == 2
    assert store.list() == []
    assert store.delete_prefix("job") == 0


BAD_KEYS = [
    "",
    "/abs/key",
    "..",
    "a/../b",
    "a/..",
    "./a",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    ".tmp-upload",
    "dir/.tmp-x/y",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_rejected_everywhere(store, key, tmp_path):
    for call in (
        lambda: store.put(key, [b"x"]),
        lambda: store.open_range(key),
        lambda: store.read_bytes(key),
        lambda: store.size(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.local_path(key),
        lambda: store.download_to(key, tmp_path / "out"),
    ):
        with pytest.raises(ValueError):
            call()
    assert store.list() == []


@pytest.mark.parametrize("prefix", ["/abs", "a/../b", "a//b", "..", "/", "a\\b"])
def test_bad_prefixes_are_rejected(store, prefix):
    with pytest.raises(ValueError):
        store.list(prefix)
    with pytest.raises(ValueError):
        store.delete_prefix(prefix)


def test_failed_put_leaves_no_object_and_keeps_the_old_one(store):
    store.put("k", [b"original"])

    def failing():
        yield b"partial data"
        raise RuntimeError("upload interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        store.put("k", failing())
    with pytest.raises(RuntimeError):
        store.put("fresh/new", failing())
    assert store.read_bytes("k") == b"original"
    assert not store.exists("fresh/new")
    assert store.list() == ["k"]


def test_readers_never_see_a_partial_object(store):
    seen = {}

    def observed():
        yield b"first half "
        # Mid-upload: the object must not be visible yet, in any way.
        seen["exists"] = store.exists("obj")
        seen["list"] = store.list()
        yield b"second half"

    store.put("obj", observed())
    assert seen == {"exists": False, "list": []}
    assert store.read_bytes("obj") == b"first half second half"


def test_local_path(store):
    store.put("dir/file.txt", [b"content"])
    path = store.local_path("dir/file.txt")
    if isinstance(store, LocalStore):
        assert path is not None and path.read_bytes() == b"content"
        assert path == store.root / "dir" / "file.txt"
        with pytest.raises(ObjectNotFound):
            store.local_path("dir/absent.txt")
    else:
        assert path is None


def test_concurrent_puts_and_reads(store):
    errors = []
    # Every value 'shared' may ever hold: readers must only see complete writes.
    whole_writes = {f"{n}:{r}".encode() * 100 for n in range(8) for r in range(20)}

    def worker(n: int) -> None:
        try:
            for round_ in range(20):
                data = f"{n}:{round_}".encode() * 100
                store.put(f"w/{n}", [data[:50], data[50:]])
                assert store.read_bytes(f"w/{n}") == data
                store.put("shared", [data[:7], data[7:]])
                assert store.read_bytes("shared") in whole_writes
        except BaseException as exc:  # reported below; threads swallow exceptions
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.list() == ["shared"] + [f"w/{n}" for n in range(8)]
    # The last write to 'shared' is some thread's last round.
    assert store.read_bytes("shared") in {f"{n}:19".encode() * 100 for n in range(8)}
