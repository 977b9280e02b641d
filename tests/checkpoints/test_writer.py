"""The checkpoint protocol: manifest last, atomic publish, verification, archives."""

import json
import shutil
import tarfile

import pytest

from tuneyard.checkpoints import MANIFEST, CheckpointError
from tuneyard.checkpoints.reader import list_published, read_manifest, verify_checkpoint
from tuneyard.checkpoints.writer import (
    build_model_archive,
    clean_leftovers,
    prune_published,
    publish_checkpoint,
)


def _stage(root, name="stage", model_dir=None):
    staging = root / name
    if model_dir is not None:
        shutil.copytree(model_dir, staging)
    else:
        staging.mkdir(parents=True)
        (staging / "config.json").write_text('{"a": 1}')
        (staging / "model.safetensors").write_bytes(b"\x00" * 64)
    (staging / "state").mkdir()
    (staging / "state" / "optimizer.pt").write_bytes(b"opt")
    (staging / "state" / "trainer_state.json").write_text("{}")
    return staging


def _publish(tmp_path, number, staging=None, **extra):
    staging = staging or _stage(tmp_path / "checkpoints", f".staging-{number}")
    return publish_checkpoint(
        staging_dir=staging, checkpoints_root=tmp_path / "checkpoints", number=number,
        step=number * 10, epoch=float(number), base_model="tuneyard-tiny-lm",
        hyper_parameters={"learning_rate": 0.1}, extra=extra,
    )


def test_publish_writes_manifest_last_and_renames(tmp_path, monkeypatch):
    import tuneyard.checkpoints.writer as ck

    order = []
    real_fsync_file = ck._fsync_file
    monkeypatch.setattr(ck, "_fsync_file", lambda p: (order.append(p.name), real_fsync_file(p)))
    real_dump = json.dump
    monkeypatch.setattr(
        ck.json, "dump", lambda *a, **k: (order.append(MANIFEST), real_dump(*a, **k))
    )
    path = _publish(tmp_path, 1, eval_loss=1.5, task_type="text-generation")
    assert order[-1] == MANIFEST and set(order[:-1]) == {
        "config.json", "model.safetensors", "optimizer.pt", "trainer_state.json"}
    assert path == tmp_path / "checkpoints" / "000001"
    assert not (tmp_path / "checkpoints" / ".staging-1").exists()
    manifest = read_manifest(path)
    assert manifest["number"] == 1 and manifest["step"] == 10 and manifest["epoch"] == 1.0
    assert manifest["base_model"] == "tuneyard-tiny-lm"
    assert manifest["hyper_parameters"] == {"learning_rate": 0.1}
    assert manifest["eval_loss"] == 1.5 and manifest["task_type"] == "text-generation"
    assert isinstance(manifest["created_at"], int)
    assert set(manifest["files"]) == {
        "config.json", "model.safetensors", "state/optimizer.pt", "state/trainer_state.json"}
    assert manifest["files"]["model.safetensors"]["size"] == 64
    assert verify_checkpoint(path)["number"] == 1


def test_publish_refuses_to_overwrite(tmp_path):
    _publish(tmp_path, 1)
    with pytest.raises(CheckpointError, match="already exists"):
        _publish(tmp_path, 1, staging=_stage(tmp_path / "checkpoints", ".again"))


def test_verify_detects_a_flipped_byte_a_missing_and_an_extra_file(tmp_path):
    path = _publish(tmp_path, 1)
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[10] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors: sha256 mismatch"):
        verify_checkpoint(path)
    weights.write_bytes(b"\x00" * 64)
    verify_checkpoint(path)
    (path / "state" / "optimizer.pt").unlink()
    with pytest.raises(CheckpointError, match="state/optimizer.pt: missing"):
        verify_checkpoint(path)
    (path / "state" / "optimizer.pt").write_bytes(b"opt")
    (path / "stray.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="stray.bin: not in the manifest"):
        verify_checkpoint(path)


def test_numeric_ordering_and_leftovers(tmp_path):
    root = tmp_path / "checkpoints"
    for number in (10, 2, 1):
        _publish(tmp_path, number)
    half = root / "000011"  # a crash between files and manifest
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    (root / ".staging-12").mkdir()
    (root / "tmpfile").write_text("x")
    assert list_published(root) == [1, 2, 10]
    removed = clean_leftovers(root)
    assert sorted(p.name for p in removed) == [".staging-12", "000011", "tmpfile"]
    assert sorted(p.name for p in root.iterdir()) == ["000001", "000002", "000010"]
    assert clean_leftovers(root) == []


def test_list_published_compares_as_ints_beyond_the_padding(tmp_path):
    root = tmp_path / "checkpoints"
    for name in ("999999", "1000000"):
        (root / name).mkdir(parents=True)
        (root / name / MANIFEST).write_text("{}")
    assert list_published(root) == [999999, 1000000]


def test_prune_keeps_the_newest(tmp_path):
    for number in (1, 2, 3):
        _publish(tmp_path, number)
    assert prune_published(tmp_path / "checkpoints", 0) == []
    removed = prune_published(tmp_path / "checkpoints", 2)
    assert [p.name for p in removed] == ["000001"]
    assert list_published(tmp_path / "checkpoints") == [2, 3]


def test_archive_is_deterministic_excludes_state_and_loads(tmp_path, tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = _stage(tmp_path / "checkpoints", ".staging-1", model_dir=tiny_lm)
    path = _publish(tmp_path, 1, staging=staging)
    size, sha = build_model_archive(path, tmp_path / "out" / "model.tar")
    archive = tmp_path / "out" / "model.tar"
    assert archive.stat().st_size == size
    assert list((tmp_path / "out").iterdir()) == [archive]  # no temp left
    # Same checkpoint, same bytes: the store can dedupe and clients can verify.
    assert build_model_archive(path, tmp_path / "out2.tar") == (size, sha)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert names[-1] == MANIFEST
        assert not any(n.startswith("state") for n in names)
        assert "model.safetensors" in names and "tokenizer.json" in names
        tar.extractall(tmp_path / "extracted", filter="data")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "extracted")
    tok = AutoTokenizer.from_pretrained(tmp_path / "extracted")
    assert model.config.vocab_size == len(tok)
    assert json.loads((tmp_path / "extracted" / MANIFEST).read_text())["number"] == 1


def test_archive_refuses_a_corrupt_checkpoint(tmp_path):
    path = _publish(tmp_path, 1)
    (path / "config.json").write_text('{"a": 2}')
    with pytest.raises(CheckpointError):
        build_model_archive(path, tmp_path / "a.tar")
    assert not (tmp_path / "a.tar").exists()


def test_upload_links_into_a_local_store_and_streams_the_archive(tmp_path):
    """Published files are hard-linked into a local store on the same filesystem (no
    copy, no re-hash), manifest last; the archive streamed into the store is the
    same bytes as the one built on disk."""
    from tuneyard.checkpoints.writer import store_model_archive, upload_checkpoint
    from tuneyard.storage.local import LocalStore

    path = _publish(tmp_path, 1)
    manifest = read_manifest(path)

    class Recording(LocalStore):
        adopted: list = []

        def adopt_file(self, key, file, **known):
            info = super().adopt_file(key, file, **known)
            self.adopted.append((key, known, info))
            return info

    store = Recording(tmp_path / "store")
    upload_checkpoint(store=store, directory=path, prefix="c/1/")
    assert [k for k, _, _ in store.adopted][-1] == "c/1/" + MANIFEST
    for key, known, info in store.adopted[:-1]:
        rel = key.removeprefix("c/1/")
        assert known["sha256"] == info.sha256 == manifest["files"][rel]["sha256"]
        assert store.local_path(key).stat().st_ino == (path / rel).stat().st_ino
    assert not [k for k in store.list("") if ".tmp-" in k]

    info = store_model_archive(store=store, directory=path, key="c/1.tar")
    size, sha = build_model_archive(path, tmp_path / "built.tar")
    assert (info.size, info.sha256) == (size, sha)
    assert store.read_bytes("c/1.tar") == (tmp_path / "built.tar").read_bytes()
