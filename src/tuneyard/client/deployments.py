"""Deployments and inference: the per-deployment routes and the OpenAI-style ones.

Per-deployment routes (`/v1/projects/{p}/deployments/{d}/completions`, …) are
the SDK contract's; the OpenAI-style routes (`/v1/chat/completions`, …) take
a deployment's name or id as `model` and need no project. Streaming chat uses
the OpenAI-style route, whose event format (`chat.completion.chunk`) is fixed
by OpenAI; `Deployments.chat_stream` offers the per-deployment stream too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ._http import LONG_TIMEOUT
from ._resource import Resource, body, seg
from .sse import text_deltas
from .types import ChatCompletion, Classification, Completion, Deployment, Embeddings

Message = dict[str, str]  # {"role": "user" | "system" | "assistant", "content": "..."}


class Deployments(Resource):
    """Serve a checkpoint (`/v1/projects/{id}/deployments`) and query it."""

    @staticmethod
    def _path(project_id: str, deployment_id: str | None = None, tail: str = "") -> str:
        path = f"/v1/projects/{seg(project_id)}/deployments"
        return path if deployment_id is None else f"{path}/{seg(deployment_id)}{tail}"

    def create(self, project_id: str, *, training_job_id: str, checkpoint: int,
               name: str | None = None, description: str | None = None,
               server_type: str | None = None,
               inactive_timeout: int | None = None) -> Deployment:
        """Deploy checkpoint `checkpoint` of a job (`checkpoint=0` with a base model's
        name as `training_job_id` deploys that base model)."""
        payload = body(training_job_id=training_job_id, checkpoint=checkpoint, name=name,
                       description=description, server_type=server_type,
                       inactive_timeout=inactive_timeout)
        return Deployment.model_validate(self._http.json("POST", self._path(project_id),
                                                         json=payload))

    def list(self, project_id: str) -> list[Deployment]:
        return [Deployment.model_validate(d)
                for d in self._http.pages(self._path(project_id))]

    def get(self, project_id: str, deployment_id: str) -> Deployment:
        return Deployment.model_validate(
            self._http.json("GET", self._path(project_id, deployment_id)))

    def cancel(self, project_id: str, deployment_id: str) -> None:
        self._http.request("POST", self._path(project_id, deployment_id, "/cancel"))

    def reactivate(self, project_id: str, deployment_id: str) -> None:
        self._http.request("POST", self._path(project_id, deployment_id, "/reactivate"))

    def delete(self, project_id: str, deployment_id: str) -> None:
        self._http.request("DELETE", self._path(project_id, deployment_id))

    def wait(self, project_id: str, deployment_id: str, *, poll_s: float = 1.0,
             timeout_s: float | None = None) -> Deployment:
        """Poll until the deployment is Deployed, Failed, Cancelled or TimedOut."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            deployment = self.get(project_id, deployment_id)
            if deployment.settled:
                return deployment
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"deployment {deployment_id} still {deployment.status} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    # --- per-deployment inference (the SDK contract's routes) -------------------------

    def complete(self, project_id: str, deployment_id: str, prompt: str,
                 **generation: Any) -> str:
        """The generated continuation of `prompt` (no prompt echo).

        `generation`: temperature, max_new_tokens, top_p, top_k,
        no_repeat_ngram_size, do_sample.
        """
        answer = self._http.json("POST", self._path(project_id, deployment_id, "/completions"),
                                 json=body(prompt=prompt, **generation), timeout=LONG_TIMEOUT)
        return answer["response"]

    def chat(self, project_id: str, deployment_id: str, messages: list[Message],
             **generation: Any) -> str:
        """The assistant's reply to `messages`."""
        answer = self._http.json(
            "POST", self._path(project_id, deployment_id, "/chat/completions"),
            json=body(messages=messages, **generation), timeout=LONG_TIMEOUT,
            headers={"Accept": "application/json"})
        return answer["response"]

    def chat_stream(self, project_id: str, deployment_id: str, messages: list[Message],
                    **generation: Any) -> Iterator[str]:
        """The reply as text pieces while it is generated (Server-Sent Events).

        A generator: the request is sent when iteration starts.
        """
        path = self._path(project_id, deployment_id, "/chat/completions")
        yield from _stream(self._http, path, body(messages=messages, streaming=True,
                                                   **generation))

    def classify(self, project_id: str, deployment_id: str, text: str) -> dict[str, Any]:
        """`{"id", "response": <label, or the value for regression>, ...extras}`."""
        return self._http.json(
            "POST", self._path(project_id, deployment_id, "/classification"),
            json={"source_sentence": text}, timeout=LONG_TIMEOUT)

    def embed(self, project_id: str, deployment_id: str, source: str, target: str, *,
              cosine: bool = True, manhattan: bool = False,
              euclidean: bool = False) -> dict[str, Any]:
        """`{"embeddings": {"text1", "text2"}, "cosine_score", ...}` for a sentence pair."""
        answer = self._http.json(
            "POST", self._path(project_id, deployment_id, "/embeddings"),
            json={"source_sentence": source, "target_sentence": target, "cosine": cosine,
                  "manhattan": manhattan, "euclidean": euclidean}, timeout=LONG_TIMEOUT)
        return answer["response"]


class Inference(Resource):
    """The OpenAI-style routes; `model` is a deployment's name or id."""

    def completions(self, model: str, prompt: str, *, max_tokens: int | None = None,
                    temperature: float | None = None, top_p: float | None = None,
                    top_k: int | None = None, **extra: Any) -> Completion:
        payload = body(model=model, prompt=prompt, max_completion_tokens=max_tokens,
                       temperature=temperature, top_p=top_p, top_k=top_k, **extra)
        return Completion.model_validate(
            self._http.json("POST", "/v1/completions", json=payload, timeout=LONG_TIMEOUT))

    def chat_completions(self, model: str, messages: list[Message], *,
                         max_tokens: int | None = None, temperature: float | None = None,
                         top_p: float | None = None, top_k: int | None = None,
                         **extra: Any) -> ChatCompletion:
        payload = body(model=model, messages=messages, max_tokens=max_tokens,
                       temperature=temperature, top_p=top_p, top_k=top_k, **extra)
        return ChatCompletion.model_validate(
            self._http.json("POST", "/v1/chat/completions", json=payload, timeout=LONG_TIMEOUT))

    def chat_stream(self, model: str, messages: list[Message], *,
                    max_tokens: int | None = None, temperature: float | None = None,
                    top_p: float | None = None, top_k: int | None = None,
                    **extra: Any) -> Iterator[str]:
        """The reply as text deltas while it is generated (`stream: true`).

        A generator: the request is sent when iteration starts.
        """
        payload = body(model=model, messages=messages, stream=True, max_tokens=max_tokens,
                       temperature=temperature, top_p=top_p, top_k=top_k, **extra)
        yield from _stream(self._http, "/v1/chat/completions", payload)

    def embeddings(self, model: str, input: str | list[str]) -> Embeddings:  # noqa: A002
        return Embeddings.model_validate(
            self._http.json("POST", "/v1/embeddings", json={"model": model, "input": input},
                            timeout=LONG_TIMEOUT))

    def classification(self, model: str, input: str,  # noqa: A002
                       *, data_format: str | None = None) -> Classification:
        """Scores per label: `data_format` "logits" (the server's default) or "probs"."""
        payload = body(model=model, input=input, data_format=data_format)
        return Classification.model_validate(
            self._http.json("POST", "/v1/classification", json=payload, timeout=LONG_TIMEOUT))


def _stream(http, path: str, payload: dict[str, Any]) -> Iterator[str]:
    with http.stream("POST", path, json=payload, timeout=LONG_TIMEOUT,
                     headers={"Accept": "text/event-stream"}) as response:
        if "text/event-stream" not in response.headers.get("content-type", ""):
            # A server that answers a stream request with one JSON body: one piece.
            response.read()
            answer = response.json()
            text = ChatCompletion.model_validate(answer).text if "choices" in answer \
                else answer.get("response", "")
            if text:
                yield text
            return
        yield from text_deltas(response.iter_lines())
