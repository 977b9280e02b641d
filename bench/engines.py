"""P11 and P12: inference engines (many LoRA adapters on one base model).

Both on P1's model (42M parameters) with 8 LoRA adapters (r 8 on the attention
and MLP projections, random non-zero weights so every adapter answers
differently), measured on the model servers the deployments run
(`start_model_server`, `engine=True` for an engine; adapters added through its
`POST /adapters`, as the engine manager does).

- P11 memory: resident memory (VmRSS of the model-server process) of one
  engine holding the base and all 8 adapters, after one request to each,
  against one standalone deployment of one adapter (merged into its own copy
  of the base, what `deployments create` runs) after one request. Goal <= 1.25
  (eight standalone deployments cost 8x).
- P12 mixed-batch throughput: completion tokens/s of 8 concurrent greedy
  requests (32 new tokens) spread over the 8 adapters, against 8 concurrent
  requests all to one adapter, on the same engine; rounds alternate, medians
  count. Goal >= 0.8: mixing adapters in one batch costs little.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

from bench.common import Result, load_average, median, scratch_dir
from bench.fixtures import build_lm, lm_shape

ADAPTERS = 8
NEW_TOKENS = 32
PROMPT = "the quick brown fox jumps over the lazy dog and then"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def make_adapters(base: Path, where: Path, count: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    paths = []
    for k in range(count):
        path = where / f"adapter-{k}"
        torch.manual_seed(k)
        model = AutoModelForCausalLM.from_pretrained(str(base))
        # A large alpha: random adapters at the usual scale barely move a random
        # base's argmax, and 8 identical answers would hide a mixed-up batch.
        peft = get_peft_model(model, LoraConfig(
            task_type="CAUSAL_LM", r=8, lora_alpha=256, init_lora_weights=False,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                            "down_proj"]))
        peft.save_pretrained(str(path))
        paths.append(path)
    return paths


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def concurrent(call, jobs: list) -> tuple[float, int]:
    """(wall seconds, completion tokens) of `call(job)` for all jobs at once."""
    results: list = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs) + 1)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = call(jobs[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if any(r is None for r in results):
        raise RuntimeError("a request failed")
    return wall, sum(r["completion_tokens"] for r in results)


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    import httpx

    from tuneyard.serving.process import (
        ModelServerClient,
        start_model_server,
        stop_model_server,
        wait_ready,
    )

    base = build_lm(lm_shape(quick))
    work = scratch_dir("engines")
    count = 3 if quick else ADAPTERS
    rounds = 1 if quick else 5
    adapters = make_adapters(base, work, count)

    standalone = start_model_server(model_dir=str(adapters[0]), task_type="text-generation",
                                    base_model_path=str(base), env=ONE_THREAD,
                                    log_path=log_dir / "p11-standalone.log")
    try:
        wait_ready(standalone, timeout=600)
        with ModelServerClient(standalone.url) as client:
            alone_answer = client.complete(PROMPT, max_new_tokens=NEW_TOKENS)
        standalone_rss = rss_bytes(standalone.pid)
    finally:
        stop_model_server(standalone)

    engine = start_model_server(model_dir=str(base), task_type="text-generation", engine=True,
                                env=ONE_THREAD, log_path=log_dir / "p11-engine.log")
    try:
        wait_ready(engine, timeout=600)
        names = [f"a{k}" for k in range(count)]
        with httpx.Client(base_url=engine.url, timeout=600) as http:
            for name, path in zip(names, adapters, strict=True):
                http.post("/adapters", json={"name": name, "model_dir": str(path)}
                          ).raise_for_status()
        with ModelServerClient(engine.url) as client:
            answers = {n: client.complete(PROMPT, adapter=n, max_new_tokens=NEW_TOKENS)
                       for n in names}
            engine_rss = rss_bytes(engine.pid)

            def ask(name: str) -> dict:
                return client.complete(PROMPT, adapter=name, max_new_tokens=NEW_TOKENS)

            mixed, single = [], []
            for _ in range(rounds):
                wall, tokens = concurrent(ask, names)
                mixed.append(tokens / wall)
                wall, tokens = concurrent(ask, [names[0]] * count)
                single.append(tokens / wall)
            health = client.health()
    finally:
        stop_model_server(engine)
        shutil.rmtree(work, ignore_errors=True)

    same = answers["a0"]["text"] == alone_answer["text"]
    distinct = len({a["text"] for a in answers.values()})
    p11 = Result(
        id="P11", measure=f"resident memory, one engine with {count} LoRA deployments (MB)",
        unit="MB", tuneyard=engine_rss / 2**20, baseline=standalone_rss / 2**20,
        ratio=engine_rss / standalone_rss, goal_op="<=", goal=1.25,
        baseline_name="one standalone deployment of one of the adapters (merged base)",
        details={"adapters": count, "engine_rss": engine_rss, "standalone_rss": standalone_rss,
                 "same_text_as_standalone": same, "distinct_answers": distinct,
                 "load_average": load_average()})
    p11.limits = ("the engine keeps the unmerged LoRA matrices of every adapter beside the "
                  "one base (r 8 on 7 projections: about 1% of the base per adapter) and "
                  "peft's wrappers; the rest is the same interpreter and libraries")
    pairs = [m / s for m, s in zip(mixed, single, strict=True)]
    p12 = Result(
        id="P12", measure=f"{count} concurrent requests over {count} adapters (tokens/s)",
        unit="tokens/s", tuneyard=median(mixed), baseline=median(single), ratio=median(pairs),
        goal_op=">=", goal=0.8,
        baseline_name=f"{count} concurrent requests to one adapter on the same engine",
        details={"mixed_tokens_per_s": mixed, "single_tokens_per_s": single,
                 "rounds": rounds, "largest_batch": health.get("largest_batch"),
                 "batches": health.get("batches"), "torch_threads": 1,
                 "load_average": load_average()})
    p12.limits = ("a mixed batch runs each LoRA layer once per adapter present (peft splits "
                  "the batch by adapter for the low-rank product); the base matmuls are "
                  "shared, so the cost grows with adapters x LoRA layers, not with requests")
    return [p11, p12]
