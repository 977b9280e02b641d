"""The model-server process: one per deployment, serving one loaded model over
internal HTTP routes that the API server forwards to.

    python -m tuneyard.serving.server --model-dir D --task T [--base-model-path B]
        [--host 127.0.0.1] [--port P | --fd N] [--device cuda|cpu]
        [--max-new-tokens-limit 2048] [--max-generation-seconds 300]

The model is loaded before the socket listens, so `GET /health` answering 200
means ready (connections are refused until then). A load failure is printed
and the process exits with status 3. It binds loopback by default: the routes
have no authentication, the API server in front of them does that.

Routes (JSON bodies; errors are `{error, code, field?}` with 400 for a bad
request or a route that does not fit the task, 500 for a failure):

    GET  /health    {status: "ok", task, model_dir, source, device, labels,
                     loaded_at, load_seconds, queued, last_request_at, pid}
    POST /complete  {prompt, max_new_tokens?, temperature?, top_p?, top_k?,
                     no_repeat_ngram_size?, do_sample?, stop?, stream?}
    POST /chat      {messages: [{role, content}], same sampling fields, stream?}
        -> {text, prompt_tokens, completion_tokens, finish_reason}
        stream: true -> text/event-stream: `data: {"delta": "..."}` per delta,
        then `data: {"done": true, text, prompt_tokens, completion_tokens,
        finish_reason}`; a failure mid-stream is `data: {"error", "code"}`.
    POST /classify  {texts: str | [str]} -> {results: [...], labels, prompt_tokens}
    POST /embed     {texts: str | [str]} -> {embeddings: [[float]], prompt_tokens}

Concurrency: requests are served concurrently by uvicorn, but every model call
runs on the model's single worker thread in arrival order (see model.py), so
each request gets its own answer. A stream holds the model only while its
tokens are generated: the deltas are queued, so a slow reader never stalls the
model; generation is bounded by the token limit and --max-generation-seconds;
a client that disconnects cancels its generation at the next token.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneyard.serving.errors import InvalidRequest, ServingError
from tuneyard.serving.model import LoadedModel
from tuneyard.serving.params import DEFAULT_MAX_TOKENS_LIMIT, sampling_from_body, validate_texts

log = logging.getLogger("tuneyard.serving.server")
_END = object()


def _error(status: int, message: str, code: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message, "code": code}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _next_or_end(stream) -> Any:
    return next(stream, _END)


def install_error_handlers(app: FastAPI) -> None:
    """A model's refusal is a 400 with its code; anything else a 500 saying what failed."""

    @app.exception_handler(ServingError)
    async def serving_error(_request: Request, exc: ServingError) -> JSONResponse:
        status = 400 if isinstance(exc, InvalidRequest) or exc.code == "unsupported_task" else 500
        return _error(status, exc.message, exc.code, getattr(exc, "field", None))

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return _error(500, f"the model failed: {type(exc).__name__}: {exc}", "internal")


async def read_body(request: Request, state: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object (a 400 otherwise); notes the request's time in `state`."""
    state["last_request_at"] = time.time()
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


async def stream_response(stream, state: dict[str, Any]) -> StreamingResponse:
    """A generation stream as Server-Sent Events: deltas, then the result (or an error).

    The first delta is awaited before answering, so a request that fails at once
    (a prompt too long for the context) still gets a 400."""
    try:
        first = await run_in_threadpool(_next_or_end, stream)
    except BaseException:
        stream.close()
        raise

    async def events() -> AsyncIterator[str]:
        try:
            item = first
            while item is not _END:
                if item:
                    yield _sse({"delta": item})
                item = await run_in_threadpool(_next_or_end, stream)
            yield _sse({"done": True, **stream.result.to_dict()})
        except ServingError as exc:
            yield _sse({"error": exc.message, "code": exc.code})
        except Exception as exc:  # noqa: BLE001 - the status line is already sent
            log.exception("stream failed")
            yield _sse({"error": f"the model failed: {type(exc).__name__}: {exc}",
                        "code": "internal"})
        finally:
            stream.close()  # a client that went away cancels the generation
            state["last_request_at"] = time.time()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


def create_app(model: LoadedModel, *, max_new_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
               default_max_new_tokens: int | None = None) -> FastAPI:
    """The internal app serving `model` (tests mount it in-process too)."""
    app = FastAPI(title="tuneyard model server", docs_url=None, redoc_url=None,
                  openapi_url=None)
    state = {"last_request_at": None}
    sampling_limits: dict[str, int] = {"max_tokens_limit": max_new_tokens_limit}
    if default_max_new_tokens:
        sampling_limits["default_max_new_tokens"] = default_max_new_tokens

    install_error_handlers(app)

    async def body_of(request: Request) -> dict[str, Any]:
        return await read_body(request, state)

    def sampling(body: dict[str, Any]) -> dict[str, Any]:
        return sampling_from_body(body, **sampling_limits).as_kwargs()

    async def streamed(stream) -> StreamingResponse:
        return await stream_response(stream, state)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **model.info(), "pid": os.getpid(),
                "last_request_at": state["last_request_at"]}

    @app.post("/complete")
    async def complete(request: Request):
        body = await body_of(request)
        params = sampling(body)
        if body.get("stream"):
            return await streamed(model.stream_complete(body.get("prompt"), **params))
        result = await run_in_threadpool(model.complete, body.get("prompt"), **params)
        state["last_request_at"] = time.time()
        return result.to_dict()

    @app.post("/chat")
    async def chat(request: Request):
        body = await body_of(request)
        params = sampling(body)
        if body.get("stream"):
            return await streamed(model.stream_chat(body.get("messages"), **params))
        result = await run_in_threadpool(model.chat, body.get("messages"), **params)
        state["last_request_at"] = time.time()
        return result.to_dict()

    @app.post("/classify")
    async def classify(request: Request):
        texts = validate_texts((await body_of(request)).get("texts"), field="texts")
        results = await run_in_threadpool(model.classify, texts)
        tokens = await run_in_threadpool(model.count_tokens, texts)
        state["last_request_at"] = time.time()
        return {"results": results, "labels": model.labels, "prompt_tokens": tokens}

    @app.post("/embed")
    async def embed(request: Request):
        texts = validate_texts((await body_of(request)).get("texts"), field="texts")
        vectors = await run_in_threadpool(model.embed, texts)
        tokens = await run_in_threadpool(model.count_tokens, texts)
        state["last_request_at"] = time.time()
        return {"embeddings": vectors, "prompt_tokens": tokens}

    return app


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tuneyard.serving.server",
                                description="Serve one model over internal HTTP routes.")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--task", required=True,
                   help="text-generation | classification | regression | embedding")
    p.add_argument("--base-model-path", default=None, help="the base of a LoRA adapter")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fd", type=int, default=None,
                   help="an already bound socket to serve on (start_model_server passes it)")
    p.add_argument("--device", default=None)
    p.add_argument("--max-new-tokens-limit", type=int, default=DEFAULT_MAX_TOKENS_LIMIT)
    p.add_argument("--max-generation-seconds", type=float, default=300.0)
    p.add_argument("--engine", action="store_true",
                   help="serve --model-dir as an engine's base: LoRA adapters are loaded "
                        "at run time (see tuneyard.serving.engine)")
    return p


def _exit_with_parent(interval: float = 1.0) -> None:
    """A watchdog thread: exit once the process that started us is gone.

    Forked by tuneyard.processes, the server already asked the kernel for
    SIGKILL when its parent dies (PR_SET_PDEATHSIG); this covers a server
    started any other way, and systems without prctl. A model server without
    its API server is unreachable garbage holding memory (a GPU's too)."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                print("tuneyard model server: parent process gone; exiting",
                      file=sys.stderr, flush=True)
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    _exit_with_parent()
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import transformers
    import uvicorn

    from tuneyard.serving.loaded import load_for_serving

    # Progress bars are noise in a log file.
    transformers.utils.logging.disable_progress_bar()

    log.info("loading %s model from %s", args.task, args.model_dir)
    try:
        if args.engine:
            from tuneyard.serving.engine import create_engine_app, load_engine

            model = load_engine(args.model_dir, task_type=args.task, device=args.device,
                                max_new_tokens_limit=args.max_new_tokens_limit,
                                max_generation_seconds=args.max_generation_seconds or None)
        else:
            model = load_for_serving(
                args.model_dir, task_type=args.task, base_model_path=args.base_model_path,
                device=args.device, max_new_tokens_limit=args.max_new_tokens_limit,
                max_generation_seconds=args.max_generation_seconds or None,
            )
    except ServingError as exc:
        print(f"tuneyard model server: {exc.message}", file=sys.stderr, flush=True)
        return 3
    log.info("loaded in %.1fs on %s", model.load_seconds, model.device)

    if args.engine:
        app = create_engine_app(model, max_new_tokens_limit=args.max_new_tokens_limit)
    else:
        app = create_app(model, max_new_tokens_limit=args.max_new_tokens_limit)
    # On SIGTERM, requests in flight get 3 s to finish; stop_model_server's
    # SIGKILL comes later still.
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info",
                            timeout_graceful_shutdown=3, access_log=False)
    server = uvicorn.Server(config)
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        log.info("serving on http://%s:%d", *sock.getsockname()[:2])
        server.run(sockets=[sock])
    else:
        server.run()
    # A generation still running on the model thread would keep the interpreter
    # alive until it ends; the process has nothing left to flush but logs.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
