"""Snapshots: one checkpoint's training state, copied into host memory.

The training loop stops only for this copy. Everything slow (serialising,
fsync, hashing, publishing, telling the worker) happens afterwards on the
checkpoint writer's thread, from the copy (writer.py, publisher.py).

A `HostSlot` is one reusable set of host buffers:

- a *shadow* of the model: a structural copy (`copy.deepcopy`) whose
  trainable parameters and buffers are host tensors of its own, while frozen
  parameters (a LoRA job's base weights) stay shared with the live model:
  nothing updates them, so copying them would only cost memory. The writer
  saves the shadow with the library's own `save_pretrained`, so the model
  files are exactly what the Trainer wrote itself (tied weights, PEFT adapter
  filtering, the sentence-transformers layout). Tied parameters are one
  Parameter, so they stay tied in the shadow and are copied once;
- buffers for the optimizer and scheduler state, reused from one checkpoint
  to the next when shapes match.

On CUDA the host buffers are pinned and filled with non-blocking copies on
the current stream; `Snapshot.wait` synchronises a CUDA event recorded after
those copies, and the writer calls it before reading anything. Kernels the
loop queues later (the next optimizer step) run after the copies on the same
stream, so the snapshot is this step's state. (This path cannot run on the
CPU-only test machines.)

The data position is the Trainer's: `global_step` and the epoch in
trainer_state.json, with the RNG states, are what it uses to skip to the
same batch on resume.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneyard.training.checkpoint import STATE_DIR

# The file names the Trainer itself uses, so `resume_from_checkpoint` finds them.
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
SCALER_FILE = "scaler.pt"
RNG_FILE = "rng_state.pth"
TRAINER_STATE_FILE = "trainer_state.json"


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


@dataclass
class Snapshot:
    """Everything a checkpoint holds, in host memory (see the module docstring)."""

    step: int
    epoch: float
    model: Any
    """The slot's shadow model, holding this step's weights."""
    optimizer: dict
    scheduler: dict
    scaler: dict | None
    rng: dict
    trainer_state: str
    """trainer_state.json, as the Trainer writes it."""
    nbytes: int
    """Host memory this snapshot copied into (the frozen weights it shares are not counted)."""
    event: Any = None
    """A CUDA event recorded after the non-blocking copies; None on CPU."""

    def wait(self) -> None:
        """Block until the copies have landed (a no-op on CPU, where they are synchronous)."""
        if self.event is not None:
            self.event.synchronize()


class HostSlot:
    """Reusable host buffers for one snapshot in flight."""

    def __init__(self) -> None:
        self.shadow: Any = None
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (live, host)
        self._buffers: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def _host_like(tensor: torch.Tensor) -> torch.Tensor:
        # Pinned only when copying from an accelerator: pinning costs a
        # page-locked allocation and buys nothing for a host-to-host copy.
        return torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu",
                           pin_memory=tensor.device.type == "cuda")

    def _build_shadow(self, model) -> None:
        memo: dict[int, Any] = {}
        pairs = []
        for param in model.parameters():  # each Parameter once, so tied weights stay tied
            if param.requires_grad:
                host = torch.nn.Parameter(self._host_like(param), requires_grad=True)
                memo[id(param)] = host
                pairs.append((param, host))
            else:
                memo[id(param)] = param  # frozen: shared, never copied
        for buffer in model.buffers():
            host = self._host_like(buffer)
            memo[id(buffer)] = host
            pairs.append((buffer, host))
        self.shadow = copy.deepcopy(model, memo)
        self._pairs = pairs

    def _copy_tree(self, value, path: tuple, seen: list[torch.Tensor]):
        """A copy of a state_dict-like tree with every tensor in a reused host buffer.

        `seen` collects the (live) tensors copied, for accounting.
        """
        if isinstance(value, torch.Tensor):
            buffer = self._buffers.get(path)
            if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
                buffer = self._buffers[path] = self._host_like(value)
            buffer.copy_(value.detach(), non_blocking=value.device.type == "cuda")
            seen.append(value)
            return buffer
        if isinstance(value, dict):
            return {key: self._copy_tree(item, (*path, key), seen) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            items = [self._copy_tree(item, (*path, i), seen) for i, item in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        return copy.deepcopy(value)

    def capture(self, trainer) -> Snapshot:
        """Copy `trainer`'s state at its current step into this slot."""
        model = trainer.model
        if self.shadow is None:
            self._build_shadow(model)
        with torch.no_grad():
            for live, host in self._pairs:
                host.copy_(live.detach(), non_blocking=live.device.type == "cuda")
        seen: list[torch.Tensor] = [live for live, _ in self._pairs]
        optimizer = self._copy_tree(trainer.optimizer.state_dict(), ("optimizer",), seen)
        scheduler = self._copy_tree(trainer.lr_scheduler.state_dict(), ("scheduler",), seen)
        scaler = getattr(trainer.accelerator, "scaler", None)
        event = None
        if any(t.device.type == "cuda" for t in seen):
            event = torch.cuda.Event()
            event.record()  # on the current stream, after every copy above
        rng = rng_states()
        return Snapshot(
            step=trainer.state.global_step,
            epoch=round(float(trainer.state.epoch or 0.0), 6),
            model=self.shadow,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=copy.deepcopy(scaler.state_dict()) if scaler is not None else None,
            rng=rng,
            trainer_state=trainer_state_json(trainer),
            nbytes=sum(_nbytes(t) for t in seen) + _nbytes(rng["cpu"]),
            event=event,
        )


def rng_states() -> dict:
    """What the Trainer saves as rng_state.pth (single process)."""
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cpu": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.random.get_rng_state()
    return states


def trainer_state_json(trainer) -> str:
    """trainer_state.json as `Trainer._save_checkpoint` writes it, callbacks' state included."""
    from transformers.trainer_callback import ExportableState

    trainer.store_flos()
    stateful = trainer.state.stateful_callbacks
    for callback in [*trainer.callback_handler.callbacks, trainer.control]:
        if isinstance(callback, ExportableState):
            name = callback.__class__.__name__
            if isinstance(stateful.get(name), list):
                stateful[name].append(callback.state())
            else:
                stateful[name] = callback.state()
    return json.dumps(dataclasses.asdict(trainer.state), indent=2, sort_keys=True) + "\n"


def write_snapshot(snapshot: Snapshot, directory: Path,
                   save_model: Callable[[Any, Path], None]) -> None:
    """Write the model files into `directory` and the resume state under `state/`.

    Runs on the writer's thread. No fsync here: publishing does it.
    """
    snapshot.wait()
    directory = Path(directory)
    save_model(snapshot.model, directory)
    state = directory / STATE_DIR
    state.mkdir(exist_ok=True)
    torch.save(snapshot.optimizer, state / OPTIMIZER_FILE)
    torch.save(snapshot.scheduler, state / SCHEDULER_FILE)
    if snapshot.scaler is not None:
        torch.save(snapshot.scaler, state / SCALER_FILE)
    torch.save(snapshot.rng, state / RNG_FILE)
    (state / TRAINER_STATE_FILE).write_text(snapshot.trainer_state, encoding="utf-8")
