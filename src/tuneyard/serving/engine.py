"""Engine mode of the model server: one base model, many LoRA adapters.

    python -m tuneyard.serving.server --engine --model-dir BASE --task text-generation ...

The base weights are loaded once; LoRA adapters are added and removed at run
time (`POST /adapters`, `DELETE /adapters/{name}`) with peft's
`load_adapter` / `delete_adapter`, on the model thread, so a request to
another adapter never sees a half-loaded model and nothing restarts.

Requests name their adapter (`{"adapter": name, ...}` on /complete and /chat).
Greedy, non-streamed requests go through a micro-batcher: it collects what
arrives within a few milliseconds (and everything that queued while the
previous batch ran) and answers it with ONE `generate(..., adapter_names=[...])`
call, peft's mixed-adapter batch. Each row stops on its own budget, stop
strings and EOS, so its text is what a standalone deployment of the same
checkpoint returns. Sampled or streamed requests run alone (still with
`adapter_names`), in arrival order on the same model thread.

Classification and embedding engines are not served this way yet: the server
answers their routes with 400 (unsupported_task).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneyard.serving.errors import InvalidRequest, ServingError
from tuneyard.serving.generate import GenerationStream, TextGenerationModel, find_stop
from tuneyard.serving.model import Generation
from tuneyard.serving.params import (
    DEFAULT_MAX_TOKENS_LIMIT,
    SamplingParams,
    sampling_from_body,
    validate_messages,
)

log = logging.getLogger("tuneyard.serving.engine")
BATCH_WINDOW = 0.005  # seconds a batch waits for company after its first request
MAX_BATCH = 32


class UnknownAdapter(InvalidRequest):
    code = "unknown_adapter"


@dataclass
class _Pending:
    text: str
    special: bool
    params: SamplingParams
    adapter: str
    future: Future = field(default_factory=Future)


class _BatchStop:
    """Per-row stopping: a row ends on EOS, its own token budget or stop
    string; `ended[i]` is how many tokens row i generated when it ended."""

    def __init__(self, *, prompt_len: int, budgets: list[int], stops: list[tuple[str, ...]],
                 eos_ids: frozenset[int], decode):
        self.prompt_len, self.budgets, self.stops = prompt_len, budgets, stops
        self.eos_ids, self.decode = eos_ids, decode
        self.ended: list[int | None] = [None] * len(budgets)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        n = input_ids.shape[1] - self.prompt_len
        for i, ended in enumerate(self.ended):
            if ended is not None or n == 0:
                continue
            row = input_ids[i, self.prompt_len:]
            if int(row[-1]) in self.eos_ids or n >= self.budgets[i] or (
                    self.stops[i] and find_stop(self.decode(row.tolist()), self.stops[i])
                    is not None):
                self.ended[i] = n
        done = [e is not None for e in self.ended]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class EngineTextModel(TextGenerationModel):
    """A causal LM base with named LoRA adapters, batched across adapters."""

    def __init__(self, model, tokenizer, *, batch_window: float = BATCH_WINDOW,
                 max_batch: int = MAX_BATCH, **common: Any):
        super().__init__(model, tokenizer, **common)
        self.adapters: dict[str, str] = {}  # name -> the directory it came from
        self.batch_window, self.max_batch = batch_window, max_batch
        self.batches = 0  # generate calls made for batches (for /health and tests)
        self.batched_requests = 0
        self.largest_batch = 0
        self._queue: queue.Queue[_Pending] = queue.Queue()
        threading.Thread(target=self._batch_loop, name="tuneyard-batcher", daemon=True).start()

    # -- adapters (on the model thread: never while a generation runs) ---------
    def load_adapter(self, name: str, model_dir: str) -> bool:
        """Load `model_dir`'s LoRA adapter as `name`; False when already loaded."""
        if not isinstance(name, str) or not name or name.startswith("__"):
            raise InvalidRequest("name: must be a non-empty adapter name", field="name")
        if not isinstance(model_dir, str) or not model_dir:
            raise InvalidRequest("model_dir: must be a directory", field="model_dir")
        return self.run(self._load_adapter, name, model_dir)

    def _load_adapter(self, name: str, model_dir: str) -> bool:
        from peft import PeftModel

        from tuneyard.serving.loading import inspect_model_dir

        if name in self.adapters:
            return False
        source = inspect_model_dir(model_dir, base_model_path=self.model_dir)
        if source.kind != "adapter":
            raise InvalidRequest(f"{model_dir} holds a {source.kind} model, not a LoRA "
                                 "adapter: an engine serves LoRA checkpoints only",
                                 field="model_dir")
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(source.source, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, source.source,
                                                       adapter_name=name)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the base stays
            raise InvalidRequest(f"cannot load the adapter in {model_dir}: "
                                 f"{type(exc).__name__}: {exc}", field="model_dir") from exc
        self.model.eval()
        self.adapters[name] = model_dir
        return True

    def unload_adapter(self, name: str) -> bool:
        return self.run(self._unload_adapter, name)

    def _unload_adapter(self, name: str) -> bool:
        if name not in self.adapters:
            return False
        del self.adapters[name]
        if self.adapters:
            self.model.delete_adapter(name)
        else:
            # peft cannot delete the last adapter; unwrapping gives the base
            # back exactly (the LoRA layers are removed, nothing is merged).
            self.model = self.model.unload()
        return True

    def _check(self, adapter: Any) -> str:
        if not isinstance(adapter, str) or adapter not in self.adapters:
            raise UnknownAdapter(f"adapter {adapter!r} is not loaded on this engine",
                                 field="adapter")
        return adapter

    # -- requests --------------------------------------------------------------
    def _submit(self, text: str, special: bool, params: SamplingParams,
                adapter: str) -> Generation:
        self._check(adapter)
        if params.do_sample:  # sampling is per request: it runs alone
            return self.run(self._generate, text, special, params, cancel=threading.Event(),
                            adapter_names=[adapter])
        pending = _Pending(text, special, params, adapter)
        self._queue.put(pending)
        return pending.future.result()

    def complete_with(self, adapter: str, prompt: Any, params: SamplingParams) -> Generation:
        if not isinstance(prompt, str):
            raise InvalidRequest("prompt must be a string", field="prompt")
        return self._submit(prompt, True, params, adapter)

    def chat_with(self, adapter: str, messages: Any, params: SamplingParams) -> Generation:
        text, special = self.render_chat(validate_messages(messages))
        return self._submit(text, special, params, adapter)

    def stream_with(self, adapter: str, params: SamplingParams, *, prompt: Any = None,
                    messages: Any = None) -> GenerationStream:
        self._check(adapter)
        if messages is not None:
            text, special = self.render_chat(validate_messages(messages))
        else:
            if not isinstance(prompt, str):
                raise InvalidRequest("prompt must be a string", field="prompt")
            text, special = prompt, True
        return self._stream(text, special, params, adapter_names=[adapter])

    # -- the batcher -------------------------------------------------------------
    def _batch_loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.batch_window
            while len(batch) < self.max_batch:
                try:
                    # Whatever queued while the last batch ran is taken at once.
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            groups: dict[Any, list[_Pending]] = {}
            for item in batch:  # no_repeat_ngram_size is one setting per generate call
                groups.setdefault(item.params.no_repeat_ngram_size, []).append(item)
            for group in groups.values():
                try:
                    self.run(self._generate_batch, group)
                except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure
                    for item in group:
                        if not item.future.done():
                            item.future.set_exception(exc)

    def _generate_batch(self, items: list[_Pending]) -> None:
        import torch

        rows: list[tuple[_Pending, list[int]]] = []
        for item in items:
            try:
                self._check(item.adapter)  # it may have been unloaded meanwhile
                rows.append((item, self._encode(item.text, item.special)[0].tolist()))
            except ServingError as exc:
                item.future.set_exception(exc)
        if not rows:
            return
        width = max(len(ids) for _, ids in rows)
        input_ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        budgets = []
        for i, (item, ids) in enumerate(rows):  # left padding: every row ends at `width`
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, width - len(ids):] = 1
            budget = item.params.max_new_tokens
            if self.context_length:
                budget = min(budget, self.context_length - len(ids))
            budgets.append(budget)
        stop = _BatchStop(prompt_len=width, budgets=budgets,
                          stops=[item.params.stop for item, _ in rows],
                          eos_ids=self.eos_ids, decode=self._decode)
        from transformers import StoppingCriteriaList

        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(self.model.device),
            "attention_mask": mask.to(self.model.device),
            "max_new_tokens": max(budgets),
            "do_sample": False,
            "pad_token_id": self._pad_id,
            "stopping_criteria": StoppingCriteriaList([stop]),
            "adapter_names": [item.adapter for item, _ in rows],
        }
        ngram = rows[0][0].params.no_repeat_ngram_size
        if ngram:
            kwargs["no_repeat_ngram_size"] = ngram
        if self.max_generation_seconds:
            kwargs["max_time"] = self.max_generation_seconds
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        self.batches += 1
        self.batched_requests += len(rows)
        self.largest_batch = max(self.largest_batch, len(rows))
        for i, (item, ids) in enumerate(rows):
            count = stop.ended[i] if stop.ended[i] is not None else budgets[i]
            generated = output[i, width:width + count].tolist()
            text = self._decode(generated)
            cut = find_stop(text, item.params.stop)
            if cut is not None:
                text, reason = text[:cut], "stop"
            elif generated and generated[-1] in self.eos_ids:
                reason = "stop"
            else:
                reason = "length"
            item.future.set_result(Generation(text, len(ids), len(generated), reason))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "engine": True, "adapters": sorted(self.adapters),
                "batches": self.batches, "batched_requests": self.batched_requests,
                "largest_batch": self.largest_batch}


def load_engine(base_dir: str, *, task_type: str, device: str | None = None,
                max_new_tokens_limit: int | None = None,
                max_generation_seconds: float | None = None) -> EngineTextModel:
    from tuneyard.serving import loading
    from tuneyard.serving.errors import ModelLoadError
    from tuneyard.serving.model import normalize_task

    task = normalize_task(task_type)
    if task != "text-generation":
        raise ModelLoadError(f"engines serve text-generation models; {task} engines are "
                             "not supported yet")
    started = time.monotonic()
    source = loading.inspect_model_dir(base_dir)
    device = loading.resolve_device(device)
    model, tokenizer = loading.load_causal_lm(source, device=device)
    return EngineTextModel(model, tokenizer, load_seconds=time.monotonic() - started,
                           max_new_tokens_limit=max_new_tokens_limit,
                           max_generation_seconds=max_generation_seconds, task_type=task,
                           model_dir=str(base_dir), device=device, source="engine")


def create_engine_app(model: EngineTextModel, *,
                      max_new_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT) -> FastAPI:
    """The internal routes of an engine (see the module docstring)."""
    from tuneyard.serving.server import install_error_handlers, read_body, stream_response

    app = FastAPI(title="tuneyard engine", docs_url=None, redoc_url=None, openapi_url=None)
    state: dict[str, Any] = {"last_request_at": None}

    install_error_handlers(app)

    async def body_of(request: Request) -> dict[str, Any]:
        return await read_body(request, state)

    async def streamed(stream: GenerationStream) -> StreamingResponse:
        return await stream_response(stream, state)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **model.info(), "pid": os.getpid(),
                "last_request_at": state["last_request_at"]}

    @app.post("/adapters")
    async def add_adapter(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        added = await run_in_threadpool(model.load_adapter, body.get("name"),
                                        body.get("model_dir"))
        return {"added": added, "adapters": sorted(model.adapters)}

    @app.delete("/adapters/{name}")
    async def remove_adapter(name: str) -> dict[str, Any]:
        removed = await run_in_threadpool(model.unload_adapter, name)
        return {"removed": removed, "adapters": sorted(model.adapters)}

    def params_of(body: dict[str, Any]) -> SamplingParams:
        return sampling_from_body(body, max_tokens_limit=max_new_tokens_limit)

    @app.post("/complete")
    async def complete(request: Request):
        body = await body_of(request)
        params = params_of(body)
        if body.get("stream"):
            return await streamed(model.stream_with(body.get("adapter"), params,
                                                    prompt=body.get("prompt")))
        result = await run_in_threadpool(model.complete_with, body.get("adapter"),
                                         body.get("prompt"), params)
        return result.to_dict()

    @app.post("/chat")
    async def chat(request: Request):
        body = await body_of(request)
        params = params_of(body)
        if body.get("stream"):
            return await streamed(model.stream_with(body.get("adapter"), params,
                                                    messages=body.get("messages")))
        result = await run_in_threadpool(model.chat_with, body.get("adapter"),
                                         body.get("messages"), params)
        return result.to_dict()

    @app.post("/classify")
    async def classify(_request: Request):
        raise model._unsupported("classification", "classification or regression")

    @app.post("/embed")
    async def embed(_request: Request):
        raise model._unsupported("embeddings", "embedding")

    return app
