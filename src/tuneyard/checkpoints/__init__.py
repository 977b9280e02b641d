"""The checkpoint format: one writer (`writer`) and one reader (`reader`).

This docstring is the format's specification; docs/architecture.md describes
where checkpoints sit in the platform. Nothing outside this package knows a
checkpoint's file names: consumers (training resume and continued training,
evaluation, serving, deployment, downloads) call the reader.

Layout
------
A published checkpoint is a directory, `<checkpoints_root>/<number:06d>/` on
the training machine and `…/jobs/<job>/checkpoints/<number:06d>/` in the
artifact store (keys: `tuneyard.storage.keys`)::

    config.json, model.safetensors          a full model (from_pretrained), or
    adapter_config.json,                    a LoRA adapter on a base model
      adapter_model.safetensors
    modules.json, …                         a sentence-transformers model (embedding)
    tokenizer.json, tokenizer_config.json…  the tokenizer (an adapter may rely on its base's)
    generation_config.json                  generation defaults (text generation)
    state/                                  what resuming needs, not loading:
      optimizer.pt, scheduler.pt, rng_state.pth, trainer_state.json, …
    checkpoint.json                         the manifest, written last

The model part (everything but `state/`) is a directory `from_pretrained`
loads; the download archive (`<number:06d>.tar` beside the directory in the
store) holds exactly that part plus the manifest, uncompressed, members
sorted with fixed owner and mtime, so one checkpoint always gives one sha256.

The manifest
------------
A JSON object:

- `number`, `step`, `epoch`: which checkpoint of the job, and where in training.
- `base_model`: the catalog name the job trained from.
- `hyper_parameters`: the job's parameters as given.
- `created_at`: unix seconds when it was sealed.
- `files`: `{relative path: {"sha256", "size"}}` for every other file.
- Added by training (the `extra` of `publish_checkpoint`): `job_id`,
  `task_type`, `is_lora`, `base_model_path` (an adapter's base: a path on the
  training machine), `labels` (names in the head's row order; null for
  generation, regression and embedding), `multi_label`, `max_seq_length`,
  `eval_loss` and `train_loss` at this checkpoint.

A directory without a manifest is not a checkpoint: it is a leftover of a
crash. A directory with a manifest whose files do not match it is corrupt
(`reader.verify_checkpoint`).

Publish protocol (never a partial checkpoint)
---------------------------------------------
1. The files are written into a staging directory beside the root, each
   fsynced (`writer.publish_checkpoint`).
2. The manifest is written last and fsynced; the staging directory is renamed
   to `<number:06d>` (atomic on one filesystem).
3. The worker puts the directory into the store, manifest last
   (`writer.upload_checkpoint`; a local store on the same filesystem
   hard-links the files, with the manifest's digests): on a store without
   rename, a manifest present means every file is. Then it streams the
   archive into the store (`writer.store_model_archive`), and only then
   inserts the database row, so a listing (which reads rows) never shows a
   partial one.
4. On start, `writer.clean_leftovers` removes whatever has no manifest;
   `reader.download_checkpoint` copies (or links) one back, manifest last, into a staging
   directory renamed into place.

Pure Python at import: torch is imported only inside `reader.load_kwargs`.
"""

from __future__ import annotations

MANIFEST = "checkpoint.json"
"""The manifest's file name: the only place it is spelled."""
STATE_DIR = "state"
"""The resume state's folder; everything else is the loadable model."""
ADAPTER_CONFIG = "adapter_config.json"
"""Its presence makes a directory a LoRA adapter."""


class CheckpointError(Exception):
    """A checkpoint (or model directory) is missing, incomplete, corrupt, or
    does not say what it holds."""
