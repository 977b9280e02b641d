"""Snapshots: one checkpoint's training state, copied into host memory.

The training loop waits at most for this copy. Everything slow (serialising,
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

On the host, the weights and the optimizer state (nearly all the bytes) are
not even copied while the loop waits: nothing but `optimizer.step()`
changes them, so the writer's thread copies them while the loop runs the
next forward and backward pass, and a step pre-hook (`BeforeOptimizerStep`)
holds the next optimizer step until that copy is done (or does it, if the
writer has not begun). Buffers, scheduler, RNG and trainer state (small) are
copied at once.

On CUDA everything is copied at once, into pinned host buffers, with
non-blocking copies on the current stream; `Snapshot.wait` synchronises a
CUDA event recorded after those copies, and the writer calls it before
reading anything. Kernels the loop queues later (the next optimizer step)
run after the copies on the same stream, so the snapshot is this step's
state. (This path cannot run on the CPU-only test machines.)

The data position is the Trainer's: `global_step` and the epoch in
trainer_state.json, with the RNG states, are what it uses to skip to the
same batch on resume.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuneyard.checkpoints import STATE_DIR

# The file names the Trainer itself uses, so `resume_from_checkpoint` finds them.
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
SCALER_FILE = "scaler.pt"
RNG_FILE = "rng_state.pth"
TRAINER_STATE_FILE = "trainer_state.json"


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _copy(host: torch.Tensor, live: torch.Tensor) -> None:
    """host <- live. Host to host, a plain memmove: single-threaded (memory-bound
    anyway) and without the GIL, so it overlaps with the loop. A torch copy_
    on a multi-threaded intra-op pool is a parallel region per tensor, each
    ending in a barrier: on a busy machine, where a pool thread is often
    descheduled, the 650 MiB of a 57M-parameter model's weights and AdamW
    state took 0.6-3 s that way, against 0.2 s with memmove (2-core CI machine)."""
    if (live.device.type == "cpu" and live.is_contiguous()
            and live.dtype == host.dtype and live.shape == host.shape):
        if live.numel():
            ctypes.memmove(host.data_ptr(), live.data_ptr(), _nbytes(live))
    else:
        host.copy_(live, non_blocking=live.device.type == "cuda")


class Copies:
    """(live, host) tensor pairs to copy; `run` copies them once, whoever calls it first
    (a second caller waits for the first to finish)."""

    def __init__(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]):
        self._pairs = pairs
        self._lock = threading.Lock()
        self.done = not pairs

    def run(self) -> None:
        with self._lock:
            if self.done:
                return
            with torch.no_grad():
                for live, host in self._pairs:
                    _copy(host, live)
            self._pairs = []  # no reference to the live tensors is kept
            self.done = True


class BeforeOptimizerStep:
    """Runs pending deferred copies before the optimizer next changes anything.

    On the host, a snapshot's weights and optimizer state need not be copied
    while the loop waits: only `optimizer.step()` changes them (forward,
    backward, the eval loss and gradient clipping only read them). So they
    are copied on the writer's thread while the loop goes on, and a
    step pre-hook makes the next optimizer step wait for that copy, or do it
    itself if the writer has not started it (with more than one checkpoint in
    flight the writer may still be busy with an earlier one).
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Copies, Callable[[float], None]]] = []
        self._handle = None

    def add(self, optimizer, copies: Copies, waited: Callable[[float], None]) -> None:
        """`waited(seconds)` is told how long the step waited for `copies`."""
        if self._handle is None:
            while hasattr(optimizer, "optimizer"):  # accelerate's AcceleratedOptimizer
                optimizer = optimizer.optimizer
            self._handle = optimizer.register_step_pre_hook(self._before_step)
        self._pending.append((copies, waited))

    def _before_step(self, optimizer, args, kwargs) -> None:
        pending, self._pending = self._pending, []
        for copies, waited in pending:
            began = time.perf_counter()
            copies.run()
            waited(time.perf_counter() - began)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


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
    deferred: Copies
    """Weights and optimizer state still to copy (host only; done at once on CUDA)."""
    event: Any = None
    """A CUDA event recorded after the non-blocking copies; None on the host."""

    def wait(self) -> None:
        """Make the host copy complete: do the deferred copies if the loop has
        not, and wait for the CUDA copies to land."""
        self.deferred.run()
        if self.event is not None:
            self.event.synchronize()


class HostSlot:
    """Reusable host buffers for one snapshot in flight."""

    def __init__(self) -> None:
        self.shadow: Any = None
        self._params: list[tuple[torch.Tensor, torch.Tensor]] = []  # (live, host)
        self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._state: dict[tuple, torch.Tensor] = {}  # optimizer/scheduler tensors by path

    @staticmethod
    def _host_like(tensor: torch.Tensor) -> torch.Tensor:
        # Pinned only when copying from an accelerator: pinning costs a
        # page-locked allocation and buys nothing for a host-to-host copy.
        return torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu",
                           pin_memory=tensor.device.type == "cuda")

    def _build_shadow(self, model) -> None:
        memo: dict[int, Any] = {}
        for param in model.parameters():  # each Parameter once, so tied weights stay tied
            if param.requires_grad:
                host = torch.nn.Parameter(self._host_like(param), requires_grad=True)
                memo[id(param)] = host
                self._params.append((param, host))
            else:
                memo[id(param)] = param  # frozen: shared, never copied
        for buffer in model.buffers():
            host = self._host_like(buffer)
            memo[id(buffer)] = host
            self._buffers.append((buffer, host))
        self.shadow = copy.deepcopy(model, memo)

    def _plan(self, value, path: tuple, pairs: list):
        """`value` (a state_dict-like tree) with every tensor replaced by a host
        buffer of this slot (reused when the shape matches); the (live, host)
        pairs to copy are appended to `pairs`."""
        if isinstance(value, torch.Tensor):
            host = self._state.get(path)
            if host is None or host.shape != value.shape or host.dtype != value.dtype:
                host = self._state[path] = self._host_like(value)
            pairs.append((value.detach(), host))
            return host
        if isinstance(value, dict):
            return {key: self._plan(item, (*path, key), pairs) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            items = [self._plan(item, (*path, i), pairs) for i, item in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        return copy.deepcopy(value)

    def capture(self, trainer, *, defer: bool = True) -> Snapshot:
        """Snapshot `trainer`'s state at its current step into this slot.

        With `defer` (and everything on the host) the weights and optimizer
        state are left in `Snapshot.deferred`: the caller must run it before
        the next optimizer step (BeforeOptimizerStep) or let the writer run it.
        Everything else is copied now.
        """
        if self.shadow is None:
            self._build_shadow(trainer.model)
        now: list = []  # copied before returning
        later: list = [(live.detach(), host) for live, host in self._params]
        # Buffers may change in a forward pass (running statistics): now.
        now += [(live.detach(), host) for live, host in self._buffers]
        optimizer = self._plan(trainer.optimizer.state_dict(), ("optimizer",), later)
        scheduler = self._plan(trainer.lr_scheduler.state_dict(), ("scheduler",), now)
        on_cuda = any(live.device.type == "cuda" for live, _ in now + later)
        if on_cuda or not defer:
            now, later = now + later, []
        Copies(now).run()
        event = None
        if on_cuda:
            event = torch.cuda.Event()
            event.record()  # on the current stream, after every copy above
        scaler = getattr(trainer.accelerator, "scaler", None)
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
            nbytes=sum(_nbytes(host) for _, host in now + later) + _nbytes(rng["cpu"]),
            deferred=Copies(later),
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
