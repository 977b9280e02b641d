"""The reader: what a model directory holds, an adapter's base, the dtype policy,
and a checkpoint's round trip through the store (manifest last)."""

import json

import pytest
import torch

from tuneyard.checkpoints import MANIFEST, CheckpointError
from tuneyard.checkpoints.reader import (
    describe_model,
    download_checkpoint,
    find_manifest,
    has_state,
    load_kwargs,
    model_files,
    read_manifest,
    verify_checkpoint,
)
from tuneyard.checkpoints.writer import publish_checkpoint, upload_checkpoint
from tuneyard.storage import MemoryStore


def _write(directory, files: dict):
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name).write_text(json.dumps(value))
    return directory


def _published(tmp_path, number=1):
    staging = tmp_path / "root" / f".staging-{number}"
    _write(staging, {"config.json": {"a": 1}, "tokenizer.json": {}})
    (staging / "model.safetensors").write_bytes(b"\x01" * 32)
    (staging / "state").mkdir()
    (staging / "state" / "optimizer.pt").write_bytes(b"opt")
    return publish_checkpoint(staging_dir=staging, checkpoints_root=tmp_path / "root",
                              number=number, step=5, epoch=1.0, base_model="tiny",
                              hyper_parameters={}, extra={"labels": ["b", "a"]})


def test_kinds_and_what_the_manifest_says(tmp_path):
    full = _write(tmp_path / "full", {"config.json": {}, MANIFEST: {
        "labels": ["b", "a"], "multi_label": True}})
    source = describe_model(full)
    assert (source.kind, source.is_checkpoint, source.labels, source.multi_label) == (
        "full", True, ["b", "a"], True)
    assert source.tokenizer_source == str(full)
    base = describe_model(_write(tmp_path / "base", {"config.json": {}}))
    assert (base.kind, base.is_checkpoint, base.labels, base.multi_label) == (
        "full", False, None, False)
    st = describe_model(_write(tmp_path / "st", {"config.json": {}, "modules.json": []}))
    assert st.kind == "sentence-transformers"
    # A base model only in the Hugging Face cache is named by its hub id.
    hub = describe_model("org/model")
    assert (hub.kind, hub.source, hub.manifest) == ("full", "org/model", {})


def test_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        describe_model(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no model"):
        describe_model(_write(tmp_path / "empty", {}))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    (tmp_path / "bad" / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read"):
        describe_model(tmp_path / "bad")
    assert find_manifest(tmp_path / "empty") == {}
    with pytest.raises(CheckpointError, match="not a published checkpoint"):
        read_manifest(tmp_path / "empty")


def test_an_adapters_base_caller_then_manifest_then_adapter_config(tmp_path):
    here, there = tmp_path / "base-here", tmp_path / "base-there"
    here.mkdir()
    there.mkdir()
    adapter = _write(tmp_path / "adapter", {
        "adapter_config.json": {"base_model_name_or_path": str(there)},
        MANIFEST: {"base_model_path": str(here)}})
    # The caller resolved the base on this machine: it wins.
    assert describe_model(adapter, base_model_path=str(there)).base_model_path == str(there)
    # Else the manifest's, else the adapter's own.
    source = describe_model(adapter)
    assert (source.kind, source.is_adapter, source.base_model_path) == (
        "adapter", True, str(here))
    (adapter / MANIFEST).unlink()
    assert describe_model(adapter).base_model_path == str(there)
    # Paths recorded on another machine that do not exist here are skipped.
    gone = str(tmp_path / "gone")
    assert describe_model(adapter, base_model_path=gone).base_model_path == str(there)
    there.rmdir()
    with pytest.raises(CheckpointError, match=f"base model {gone} does not exist here"):
        describe_model(adapter, base_model_path=gone)
    _write(adapter, {"adapter_config.json": {}})
    with pytest.raises(CheckpointError, match="names no base model"):
        describe_model(adapter)
    # A hub id is taken as given; an adapter without a tokenizer uses its base's.
    source = describe_model(adapter, base_model_path="org/base")
    assert source.base_model_path == "org/base" and source.tokenizer_source == "org/base"
    _write(adapter, {"tokenizer.json": {}})
    assert describe_model(adapter, base_model_path="org/base").tokenizer_source == str(adapter)


def test_one_dtype_policy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_kwargs(device="cpu") == {"local_files_only": True, "dtype": torch.float32}
    assert load_kwargs(device="cuda")["dtype"] == "auto"  # the weights' own dtype
    assert load_kwargs(device="cuda:1")["dtype"] == "auto"
    # Training keeps full-precision weights everywhere (autocast does the rest).
    assert load_kwargs(device="cuda", training=True)["dtype"] == torch.float32
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert load_kwargs(device="cpu")["local_files_only"] is False


def test_store_round_trip_manifest_last(tmp_path):
    path = _published(tmp_path)
    assert has_state(read_manifest(path))
    assert model_files(path) == ["config.json", "model.safetensors", "tokenizer.json", MANIFEST]

    class Recording(MemoryStore):
        def __init__(self):
            super().__init__()
            self.order = []

        def put_file(self, key, path):
            self.order.append(key)
            return super().put_file(key, path)

        def download_to(self, key, target):
            self.order.append(key)
            return super().download_to(key, target)

    store = Recording()
    upload_checkpoint(store=store, directory=path, prefix="jobs/tr-1/checkpoints/000001/")
    assert store.order[-1] == "jobs/tr-1/checkpoints/000001/" + MANIFEST
    assert len(store.order) == 5

    store.order.clear()
    full = download_checkpoint(store=store, prefix="jobs/tr-1/checkpoints/000001/",
                               target=tmp_path / "resume")
    assert store.order[-1].endswith(MANIFEST)
    assert verify_checkpoint(full)["number"] == 1
    assert not (tmp_path / "resume.partial").exists()

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "stale.bin").write_bytes(b"x")  # whatever was there is replaced
    model = download_checkpoint(store=store, prefix="jobs/tr-1/checkpoints/000001/",
                                target=tmp_path / "model", model_only=True)
    assert sorted(p.name for p in model.iterdir()) == [
        MANIFEST, "config.json", "model.safetensors", "tokenizer.json"]
    assert describe_model(model).labels == ["b", "a"]

    with pytest.raises(CheckpointError, match="no checkpoint in the store"):
        download_checkpoint(store=store, prefix="jobs/tr-1/checkpoints/000002/",
                            target=tmp_path / "two")
    with pytest.raises(CheckpointError, match="not a published checkpoint"):
        upload_checkpoint(store=store, directory=tmp_path / "root", prefix="x/")
