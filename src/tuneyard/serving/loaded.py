"""A model loaded for serving: `load_for_serving(dir, task_type=...)` -> `LoadedModel`.

One `LoadedModel` per model-server process. Every model call (generate,
forward pass, encode) runs on the model's own single worker thread, in the
order the calls arrive (FIFO): a transformers model is not safe to run from
several threads at once, and queuing keeps memory flat. The public methods are
safe to call from any number of threads; each blocks until its turn is done.

Importing this module is light (torch loads inside `load_for_serving`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from tuneyard.serving.errors import InvalidRequest, UnsupportedTask

T = TypeVar("T")

# Task names the lead's API may hold (v2 task types, plus Emissary v1 model
# types) -> the task we load for.
TASK_ALIASES = {
    "text-generation": "text-generation",
    "completion": "text-generation",
    "chat": "text-generation",
    "classification": "classification",
    "regression": "regression",
    "embedding": "embedding",
    "embeddings": "embedding",
}
TASKS = ("text-generation", "classification", "regression", "embedding")


def normalize_task(task_type: str) -> str:
    try:
        return TASK_ALIASES[task_type]
    except KeyError:
        raise InvalidRequest(
            f"unknown task type {task_type!r}; expected one of {', '.join(TASKS)}",
            field="task_type",
        ) from None


@dataclass(frozen=True)
class Generation:
    """The result of one generation: the new text only, never the prompt."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    """"stop" (end of sequence or a stop string), "length" (token or time
    budget spent) or "cancelled" (a stream closed early)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadedModel:
    """Base class: the task-independent part and the methods a task lacks.

    Subclasses (generate.TextGenerationModel, encoders.ClassifierModel,
    encoders.EmbedderModel) override the methods of their task; the others
    raise `UnsupportedTask` naming the task this model serves.
    """

    def __init__(self, *, task_type: str, model_dir: str, device: str, load_seconds: float,
                 source: str, labels: list[str] | None = None):
        self.task_type = task_type
        self.model_dir = model_dir
        self.device = device
        self.load_seconds = load_seconds
        self.loaded_at = time.time()
        self.source = source  # "full" | "adapter" | "sentence-transformers"
        self.labels = labels
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneyard-model")
        self._count_lock = threading.Lock()
        self._queued = 0  # calls submitted and not finished (running included)
        self._closed = False

    # -- the model thread ---------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `fn(*args, **kwargs)` on the model thread (FIFO)."""
        with self._count_lock:
            if self._closed:
                raise RuntimeError("the model has been closed")
            self._queued += 1
        future = self._worker.submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future) -> None:
        with self._count_lock:
            self._queued -= 1

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the model thread and wait for its result (or exception)."""
        return self.submit(fn, *args, **kwargs).result()

    @property
    def queued(self) -> int:
        return self._queued

    def close(self) -> None:
        """Stop accepting calls; waits for those queued."""
        with self._count_lock:
            self._closed = True
        self._worker.shutdown(wait=True)

    def info(self) -> dict[str, Any]:
        return {
            "task": self.task_type,
            "model_dir": self.model_dir,
            "source": self.source,
            "device": self.device,
            "labels": self.labels,
            "loaded_at": int(self.loaded_at),
            "load_seconds": round(self.load_seconds, 3),
            "queued": self._queued,
        }

    # -- task methods: the subclass of the right task overrides its own -------
    def _unsupported(self, what: str, needs: str) -> UnsupportedTask:
        def a(word: str) -> str:
            return f"an {word}" if word[0] in "aeiou" else f"a {word}"

        return UnsupportedTask(
            f"this deployment serves {a(self.task_type)} model; {what} needs {a(needs)} model"
        )

    def complete(self, prompt: str, **sampling: Any) -> Generation:
        raise self._unsupported("completions", "text-generation")

    def chat(self, messages: list[dict[str, str]], **sampling: Any) -> Generation:
        raise self._unsupported("chat completions", "text-generation")

    def stream_complete(self, prompt: str, **sampling: Any) -> Iterator[str]:
        raise self._unsupported("completions", "text-generation")

    def stream_chat(self, messages: list[dict[str, str]], **sampling: Any) -> Iterator[str]:
        raise self._unsupported("chat completions", "text-generation")

    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        raise self._unsupported("classification", "classification or regression")

    def embed(self, texts: list[str]) -> list[list[float]]:
        raise self._unsupported("embeddings", "embedding")

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model sees for these texts (for `usage`)."""
        raise NotImplementedError


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
    `base_model_path`, else the manifest's `base_model_path`, else the
    adapter's own `base_model_name_or_path`. `device` None picks cuda when
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
