"""open_store: from a configured URL to a store."""

from __future__ import annotations

import pytest

from tuneyard.storage import LocalStore, MemoryStore, open_store


def test_file_urls_and_plain_paths_open_local_stores(tmp_path):
    by_url = open_store((tmp_path / "u").as_uri())
    assert isinstance(by_url, LocalStore) and by_url.root == tmp_path / "u"
    by_path = open_store(str(tmp_path / "p"))
    assert isinstance(by_path, LocalStore) and by_path.root == tmp_path / "p"
    spaced = open_store((tmp_path / "with space").as_uri())  # percent-encoded in the URL
    assert spaced.root == tmp_path / "with space"
    assert open_store(f"file://localhost{tmp_path / 'h'}").root == tmp_path / "h"


def test_memory_url_opens_a_fresh_memory_store():
    first, second = open_store("memory://"), open_store("memory://")
    assert isinstance(first, MemoryStore) and isinstance(second, MemoryStore)
    first.put("k", [b"v"])
    assert not second.exists("k")


def test_s3_urls_open_a_checked_s3_store(s3_env):
    from tuneyard.storage.s3 import S3Store

    bucket = s3_env.new_bucket()
    store = open_store(f"s3://{bucket}/some/prefix/")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (bucket, "some/prefix/")
    store.put("k", b"v")
    assert s3_env.keys(bucket) == ["some/prefix/k"]
    assert open_store(f"s3://{bucket}").prefix == ""


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://b/a/../c", "s3://b/p?x=1"])
def test_malformed_s3_urls_are_refused(url):
    with pytest.raises(ValueError):
        open_store(url)


@pytest.mark.parametrize(
    "url", ["", "ftp://host/dir", "file://otherhost/dir", "file://", "gs://bucket"]
)
def test_unusable_urls_are_refused(url):
    with pytest.raises(ValueError):
        open_store(url)
