"""A model loaded for serving: `load_for_serving(dir, task_type=...)` -> `LoadedModel`.

The factory only: the base class and result types are in `serving.model`, the
task implementations in `generate` and `encoders`. Importing this module is
light (torch loads inside `load_for_serving`).
"""

from __future__ import annotations

import time

from tuneyard.serving.model import LoadedModel, normalize_task


def load_for_serving(
    model_dir: str,
    *,
    task_type: str,
    base_model_path: str | None = None,
    device: str | None = None,
    max_new_tokens_limit: int | None = None,
    max_generation_seconds: float | None = None,
) -> LoadedModel:
    """Load a published checkpoint or a plain model directory for `task_type`.

    `model_dir` holds a full model (from_pretrained), a LoRA adapter
    (adapter_config.json: loaded on its base model and merged), or a
    sentence-transformers model (modules.json). An adapter's base is
    `base_model_path`, else as the checkpoint records it (the checkpoint
    reader's `adapter_base`). `device` None picks cuda when
    available. `max_generation_seconds` bounds one generation's wall time (it
    then finishes with "length"), so no request can hold the model forever.
    Raises `ModelLoadError` with a message saying what is missing or wrong.
    """
    from tuneyard.serving import loading

    task = normalize_task(task_type)
    started = time.monotonic()
    source = loading.inspect_model_dir(model_dir, base_model_path=base_model_path)
    device = loading.resolve_device(device)
    common = {"task_type": task, "model_dir": str(model_dir), "device": device,
              "source": source.kind}
    if task == "text-generation":
        from tuneyard.serving.generate import TextGenerationModel

        model, tokenizer = loading.load_causal_lm(source, device=device)
        return TextGenerationModel(
            model, tokenizer, load_seconds=time.monotonic() - started,
            max_new_tokens_limit=max_new_tokens_limit,
            max_generation_seconds=max_generation_seconds, **common,
        )
    if task in ("classification", "regression"):
        from tuneyard.serving.encoders import ClassifierModel

        loaded = loading.load_sequence_classifier(source, device=device,
                                                  regression=task == "regression")
        return ClassifierModel(loaded, load_seconds=time.monotonic() - started, **common)
    from tuneyard.serving.encoders import EmbedderModel

    encoder = loading.load_sentence_transformer(source, device=device)
    return EmbedderModel(encoder, load_seconds=time.monotonic() - started, **common)
