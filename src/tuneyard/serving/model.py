"""What every model loaded for serving is: `LoadedModel`, its `Generation`
result, and the task names it may serve.

The task implementations (generate.TextGenerationModel, encoders.ClassifierModel,
encoders.EmbedderModel) subclass `LoadedModel`; `loaded.load_for_serving`
builds the right one. Keeping the base here, apart from that factory, is what
lets the factory import the implementations without an import loop.

One `LoadedModel` per model-server process. Every model call (generate,
forward pass, encode) runs on the model's own single worker thread, in the
order the calls arrive (FIFO): a transformers model is not safe to run from
several threads at once, and queuing keeps memory flat. The public methods are
safe to call from any number of threads; each blocks until its turn is done.

Importing this module is light: no torch.
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
