"""Turn a catalog source into something `from_pretrained` can load here.

Sources: `builtin:tiny-lm` / `builtin:tiny-chat` (built once under the home
dir), `package:<module>` (weights shipped in a Python package exposing
`get_model_path()`), an absolute or `~` path, or a Hugging Face hub id, which
is only usable when its files are already in the local cache (tuneyard never
downloads while HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

BUILTINS = {"tiny-lm": False, "tiny-chat": True}  # name -> chat variant


class ModelUnavailable(Exception):
    """The base model's weights cannot be had on this machine."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_model_path(source: str, *, home: Path) -> str:
    """Return a local directory (or, online, a hub id) for `source`."""
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if name not in BUILTINS:
            raise ModelUnavailable(
                f"unknown builtin model '{source}'; known: "
                + ", ".join(f"builtin:{n}" for n in sorted(BUILTINS))
            )
        from tuneyard.models.builtin import build_tiny_lm

        target = Path(home) / "models" / "builtin" / name
        return str(build_tiny_lm(target, chat=BUILTINS[name]))

    if source.startswith("package:"):
        module_name = source.removeprefix("package:")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise ModelUnavailable(
                f"model '{source}' cannot be loaded: "
                f"Python package '{module_name}' is not installed"
            ) from None
        get_path = getattr(module, "get_model_path", None)
        if get_path is None:
            raise ModelUnavailable(
                f"model '{source}': package '{module_name}' has no get_model_path()"
            )
        path = Path(get_path())
        if not path.is_dir():
            raise ModelUnavailable(f"model '{source}': {path} does not exist")
        return str(path)

    if source.startswith(("/", "~")):
        path = Path(source).expanduser()
        if not path.exists():
            raise ModelUnavailable(f"model '{source}' cannot be loaded: {path} does not exist")
        return str(path)

    # A hub id. Offline, it must already be cached; online, transformers fetches it.
    if hub_offline() and not in_hf_cache(source):
        raise ModelUnavailable(
            f"model '{source}' cannot be loaded offline: not in the local Hugging Face cache"
        )
    return source


def in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed repo id is simply "not cached"
        return False
    return isinstance(found, str) and os.path.exists(found)
