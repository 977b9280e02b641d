"""Text generation for serving: complete, chat, and their streamed forms.

The returned text is only what the model generated (the prompt is never
echoed), decoded without special tokens, cut before the first stop string.
Streams are built on transformers' `TextIteratorStreamer`, but each delta is
taken from a decode of everything generated so far, so the deltas always
concatenate to exactly the non-streamed text: a delta never ends inside an
unfinished UTF-8 character (a trailing U+FFFD is held back) nor inside what
may be the start of a stop string.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from tuneyard.serving.errors import InvalidRequest
from tuneyard.serving.model import Generation, LoadedModel
from tuneyard.serving.params import (
    DEFAULT_MAX_TOKENS_LIMIT,
    SamplingParams,
    validate_messages,
    validate_sampling,
)


def find_stop(text: str, stops: tuple[str, ...]) -> int | None:
    """Index of the earliest stop string in `text`, or None."""
    hits = [i for s in stops if (i := text.find(s)) >= 0]
    return min(hits) if hits else None


def safe_end(text: str, stops: tuple[str, ...]) -> int:
    """How much of `text` can be sent now: not a trailing replacement character
    (the next token may complete it) nor a suffix that may begin a stop string."""
    end = len(text)
    while end and text[end - 1] == "\ufffd":
        end -= 1
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, end), 0, -1):
            if text[end - k:end] == stop[:k]:
                hold = max(hold, k)
                break
    return end - hold


class _StopCheck(StoppingCriteria):
    """Ends generation on a stop string, a cancelled stream, or the streamer's say."""

    def __init__(self, *, prompt_len: int, decode, stops: tuple[str, ...],
                 cancel: threading.Event, streamer: _DeltaStreamer | None):
        self.prompt_len, self.decode, self.stops = prompt_len, decode, stops
        self.cancel, self.streamer = cancel, streamer

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = self.cancel.is_set()
        if not done and self.streamer is not None:
            done = self.streamer.stop_hit  # it decoded this token already
        elif not done and self.stops:
            text = self.decode(input_ids[0, self.prompt_len:].tolist())
            done = find_stop(text, self.stops) is not None
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class _DeltaStreamer(TextIteratorStreamer):
    """Queues text deltas; `finish`/`fail` (called after generate returns) end the stream."""

    def __init__(self, tokenizer, *, decode, stops: tuple[str, ...]):
        super().__init__(tokenizer, skip_prompt=True)
        self.decode, self.stops = decode, stops
        self.ids: list[int] = []
        self.emitted = ""
        self.stop_hit = False

    def put(self, value) -> None:
        if self.next_tokens_are_prompt:  # generate's first put is the prompt
            self.next_tokens_are_prompt = False
            return
        self.ids.extend(value.reshape(-1).tolist())
        text = self.decode(self.ids)
        cut = find_stop(text, self.stops)
        if cut is not None:
            self.stop_hit = True
        self._emit(text, cut if cut is not None else safe_end(text, self.stops))

    def _emit(self, text: str, upto: int) -> None:
        # A decode that rewrote already-sent text (no tokenizer here does) is
        # not sent: deltas never contradict each other.
        if upto > len(self.emitted) and text.startswith(self.emitted):
            self.text_queue.put(text[len(self.emitted):upto])
            self.emitted = text[:upto]

    def end(self) -> None:
        """generate's end-of-stream: ignored, `finish` ends it with the final text."""

    def finish(self, final_text: str) -> None:
        self._emit(final_text, len(final_text))
        self.text_queue.put(self.stop_signal)

    def fail(self, exc: BaseException) -> None:
        self.text_queue.put(_Failure(exc))


class GenerationStream(Iterator[str]):
    """Text deltas of one generation. After the last one, `result` holds the
    `Generation` (whose text is the deltas joined). `close()` (or leaving a
    `with` block) cancels the generation at its next token."""

    def __init__(self, streamer: _DeltaStreamer, cancel: threading.Event):
        self._streamer, self._cancel = streamer, cancel
        self._finished = False
        self.result: Generation | None = None

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        if self._finished:
            raise StopIteration
        item = self._streamer.text_queue.get()
        if item is self._streamer.stop_signal:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._finished = True
            raise item.exc
        return item

    def close(self) -> None:
        self._cancel.set()

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._cancel.set()


SAMPLING_FIELDS = ("max_new_tokens", "temperature", "top_p", "top_k", "no_repeat_ngram_size",
                   "do_sample", "stop")


class TextGenerationModel(LoadedModel):
    """A causal LM with its tokenizer. The sampling keywords follow
    `params.validate_sampling` (None = default; temperature 0 = greedy; no
    temperature and no do_sample = greedy) and are validated (SamplingError)
    before the call is queued."""

    def __init__(self, model, tokenizer, *, max_new_tokens_limit: int | None = None,
                 max_generation_seconds: float | None = None, **common: Any):
        super().__init__(**common)
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens_limit = max_new_tokens_limit or DEFAULT_MAX_TOKENS_LIMIT
        self.max_generation_seconds = max_generation_seconds
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = frozenset(eos)
        context = getattr(model.config, "max_position_embeddings", None)
        self.context_length = context if isinstance(context, int) else None
        pad = model.generation_config.pad_token_id
        self._pad_id = pad if pad is not None else (tokenizer.pad_token_id or next(iter(eos), 0))

    # -- text in, tokens out ------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def render_chat(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """(prompt text, whether the tokenizer should add its special tokens).

        A model without a chat template (a plain base model) gets a minimal
        "role: content" transcript ending in "assistant:", so chat still works.
        """
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            return text, False  # the template writes its own BOS and role tokens
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join([*lines, "assistant:"]), True

    def count_tokens(self, texts: list[str]) -> int:
        return self.run(lambda: sum(len(self.tokenizer(t)["input_ids"]) for t in texts))

    def _params(self, arguments: dict[str, Any]) -> SamplingParams:
        """Validate a public method's sampling arguments (its `locals()`)."""
        sampling = {k: arguments[k] for k in SAMPLING_FIELDS}
        return validate_sampling(**sampling, max_tokens_limit=self.max_new_tokens_limit)

    # -- on the model thread --------------------------------------------------
    def _encode(self, text: str, add_special_tokens: bool) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=add_special_tokens,
                             return_tensors="pt")["input_ids"]
        if ids.shape[1] == 0:
            raise InvalidRequest("the prompt is empty", field="prompt")
        if self.context_length and ids.shape[1] >= self.context_length:
            raise InvalidRequest(
                f"the prompt has {ids.shape[1]} tokens; this model's context is "
                f"{self.context_length} tokens", field="prompt")
        return ids.to(self.model.device)

    def _generate(self, text: str, add_special_tokens: bool, params: SamplingParams, *,
                  cancel: threading.Event, streamer: _DeltaStreamer | None = None,
                  **extra: Any) -> Generation:
        """`extra` goes to `generate` as is (an engine passes `adapter_names`)."""
        input_ids = self._encode(text, add_special_tokens)
        prompt_len = input_ids.shape[1]
        budget = params.max_new_tokens
        if self.context_length:
            budget = min(budget, self.context_length - prompt_len)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": budget,
            "do_sample": params.do_sample,
            "pad_token_id": self._pad_id,
            "stopping_criteria": StoppingCriteriaList([_StopCheck(
                prompt_len=prompt_len, decode=self._decode, stops=params.stop,
                cancel=cancel, streamer=streamer)]),
        }
        if params.do_sample:
            for name in ("temperature", "top_p", "top_k"):
                if getattr(params, name) is not None:
                    kwargs[name] = getattr(params, name)
        if params.no_repeat_ngram_size:
            kwargs["no_repeat_ngram_size"] = params.no_repeat_ngram_size
        if self.max_generation_seconds:
            kwargs["max_time"] = self.max_generation_seconds
        if streamer is not None:
            kwargs["streamer"] = streamer
        kwargs.update(extra)
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        generated = output[0, prompt_len:].tolist()
        text_out = self._decode(generated)
        cut = find_stop(text_out, params.stop)
        if cut is not None:
            text_out, reason = text_out[:cut], "stop"
        elif cancel.is_set():
            reason = "cancelled"
        elif generated and generated[-1] in self.eos_ids:
            reason = "stop"
        else:
            reason = "length"  # the token budget, the context or max_time ran out
        return Generation(text_out, prompt_len, len(generated), reason)

    def _stream(self, text: str, add_special_tokens: bool,
                params: SamplingParams, **extra: Any) -> GenerationStream:
        cancel = threading.Event()
        streamer = _DeltaStreamer(self.tokenizer, decode=self._decode, stops=params.stop)
        stream = GenerationStream(streamer, cancel)

        def job() -> None:
            if cancel.is_set():  # closed while it waited its turn: no need to run
                stream.result = Generation("", 0, 0, "cancelled")
                streamer.finish("")
                return
            try:
                result = self._generate(text, add_special_tokens, params,
                                        cancel=cancel, streamer=streamer, **extra)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                streamer.fail(exc)
                return
            stream.result = result  # before the final signal: the consumer reads it next
            streamer.finish(result.text)

        self.submit(job)
        return stream

    # -- public ---------------------------------------------------------------
    def complete(self, prompt: str, *, max_new_tokens: int | None = None,
                 temperature: float | None = None, top_p: float | None = None,
                 top_k: int | None = None, no_repeat_ngram_size: int | None = None,
                 do_sample: bool | None = None, stop: str | list[str] | None = None
                 ) -> Generation:
        """Generate after `prompt` (tokenized with the tokenizer's special tokens)."""
        params = self._params(locals())
        _check_prompt(prompt)
        return self.run(self._generate, prompt, True, params, cancel=threading.Event())

    def chat(self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None,
             temperature: float | None = None, top_p: float | None = None,
             top_k: int | None = None, no_repeat_ngram_size: int | None = None,
             do_sample: bool | None = None, stop: str | list[str] | None = None) -> Generation:
        """The assistant's reply to `messages`, rendered with the chat template."""
        params = self._params(locals())
        text, special = self.render_chat(validate_messages(messages))
        return self.run(self._generate, text, special, params, cancel=threading.Event())

    def stream_complete(self, prompt: str, *, max_new_tokens: int | None = None,
                        temperature: float | None = None, top_p: float | None = None,
                        top_k: int | None = None, no_repeat_ngram_size: int | None = None,
                        do_sample: bool | None = None, stop: str | list[str] | None = None
                        ) -> GenerationStream:
        params = self._params(locals())
        _check_prompt(prompt)
        return self._stream(prompt, True, params)

    def stream_chat(self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None,
                    temperature: float | None = None, top_p: float | None = None,
                    top_k: int | None = None, no_repeat_ngram_size: int | None = None,
                    do_sample: bool | None = None, stop: str | list[str] | None = None
                    ) -> GenerationStream:
        params = self._params(locals())
        text, special = self.render_chat(validate_messages(messages))
        return self._stream(text, special, params)


def _check_prompt(prompt: Any) -> None:
    if not isinstance(prompt, str):
        raise InvalidRequest("prompt must be a string", field="prompt")
