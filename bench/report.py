"""The table (terminal and Markdown), results.json and RESULTS.md."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.common import Result

# Issue 7's table: what each figure is, and its goal. Benchmarks fill in the rest.
FIGURES = {
    "P1": ("training throughput, steady state (tokens/s)", ">=", 0.95),
    "P2": ("training loop blocked per checkpoint (s)", "<=", 0.02),
    "P3": ("durable checkpoint write bandwidth (MB/s)", ">=", 0.8),
    "P4": ("GET …/checkpoints (200), req/s at 32 clients", ">=", 0.5),
    "P5": ("archive download (MB/s)", ">=", 0.8),
    "P6": ("completion latency (ms)", "<=", 1.10),
    "P7": ("list latency, large DB vs small DB (ms)", "<=", 2.0),
    "P8": ("evaluation latency, checkpoint published → test results (s)", "<=", 1.5),
    "P10": ("cold start: serve → /healthz, deployment create → first token (s)", "<=", 1.5),
    "P13": ("training steps/s under 32 API clients + a deployment, vs alone", ">=", 0.8),
    "P11": ("engine memory, 8 LoRA deployments vs 1 standalone (MB)", "<=", 1.25),
    "P12": ("mixed-adapter batch throughput (tokens/s)", ">=", 0.8),
}

HOW = {
    "P1": "`run_job` with the worker's `DbEvents` (real SQLite + local store) against a "
          "plain PyTorch loop (fused AdamW, clipping, linear schedule), same 42M-parameter "
          "Llama (32k vocab, tied), 64-token examples, batch 8, 22 steps, a checkpoint "
          "every 7. The two run in lockstep in two processes (tuneyard's step k, then the "
          "bare step k, handing a baton through FIFOs), each step timed only while its arm "
          "holds the baton; step times from the per-step `should_stop` poll. Steady steps: "
          "after 3 warm-up steps, while no checkpoint work (in the loop or in the "
          "background) is under way. Values: median tokens/s; ratio: median over pairs "
          "(results.json adds the same ratio in CPU time, steadier on a busy machine).",
    "P2": "the same runs: tuneyard's time at the Trainer's save point (timed around "
          "`_maybe_log_save_evaluate` when it saves: the save and the `on_save` callbacks, "
          "so everything the loop waits for; as in the worker, the eval loss is not "
          "computed in the loop but by the evaluation process) plus any wait of the "
          "next step for copies the publisher deferred, "
          "against the bare loop's synchronous `safetensors` + `torch.save` of weights and "
          "AdamW state with fsync at the same step; the fastest of the 3 mid-run "
          "checkpoints on each side (a hold is mostly computation and a save mostly I/O, "
          "so other load does not hit a pair alike; it only ever adds time).",
    "P3": "the checkpoint's files serialized in memory, then staging write + "
          "`publish_checkpoint` + the worker's `DbEvents.checkpoint` (store `adopt_file` of "
          "every file, archive streamed in with `put`, DB row) against one sequential write + "
          "fsync of the same bytes; 3 rounds, each a raw write then a tuneyard write; "
          "ratio: median over rounds.",
    "P4": "`tuneyard serve --no-worker` on a seeded SQLite home against a bare FastAPI "
          "route returning the same bytes under the same uvicorn; wrk, 32 connections, "
          "10 s, 2 rounds (baseline then tuneyard), each server drained and answering "
          "again before the next load; servers pinned to one core, wrk to the other; "
          "successful answers only; ratio: median over rounds.",
    "P5": "the `model_download_url` of a seeded checkpoint whose 1 GiB archive is in the "
          "store (written with the store's own `put`) against nginx (sendfile) serving "
          "the same file (hard link), both from the page cache; curl to /dev/null; 3 "
          "rounds (nginx then tuneyard), pinned as P4; ratio: median over rounds.",
    "P6": "greedy, 32 new tokens, same prompt, P1's model: through the deployments API "
          "(the checkpoint published by the worker's code, deployed by `tuneyard serve`) "
          "when it exists, else the deployment's model server (`start_model_server` + "
          "`ModelServerClient`), against tokenize + `model.generate` + decode "
          "in-process; 8 alternating requests after 1 warm-up, one torch thread on both "
          "sides (two OpenMP threads on a shared 2-core machine turn other load into "
          "multi-second stalls); ratio: median over pairs.",
    "P7": "two `tuneyard serve` homes, 100 jobs / 1,000 checkpoints and 10,000 / 100,000 "
          "(the user's project holds 100 jobs of 10 checkpoints in both; other users' "
          "projects fill the large one); one client alternates requests between them; "
          "per list, the median over pairs of large/small latency; the worst list counts.",
    "P8": "the job's real evaluation process (`Worker._spawn_evaluation`, forked from the "
          "forkserver that preloaded torch/transformers/peft), warm after the baseline, "
          "for a Running job with an 8-example test set (4 generated) on P1's model; "
          "checkpoints published one at a time with the worker's code; from the row's "
          "commit until `test_status=done`, against the same `evaluate_checkpoint` on the "
          "same files in the bench process (libraries loaded, one torch thread like the "
          "evaluation process); 5 alternating rounds, ratio: median over pairs.",
    "P10": "`tuneyard serve --no-worker` until `/healthz` answers against `python -c "
           "'import torch'`; and a deployment of P1's published checkpoint from `POST "
           "…/deployments` to the first token of a completion (`max_new_tokens=1`) against "
           "a fresh python loading the same checkpoint and generating one token; one torch "
           "thread everywhere; 3 alternating rounds; the worse of the two median ratios.",
    "P13": "`tuneyard serve` with its embedded worker trains the same tiny-LM job (3000 "
           "steps, batch 4, seed 7, a loss point every 10 steps) alone, then while 32 "
           "clients (each pausing 0.5 s "
           "between requests) list projects, jobs and datasets, create and delete "
           "projects and ask a deployment of the first job for completions; steps/s from "
           "the job's per-step loss timestamps (first to last point); ratio: loaded/alone. "
           "Any 5xx, unexpected 4xx, transport error or lost write (a created project not "
           "readable, a deleted one readable) makes the figure an error.",
    "P11": "P1's model with 8 random LoRA adapters (r 8, all projections): VmRSS of one "
           "engine model server (`--engine`, the 8 adapters added through `POST /adapters`) "
           "after one greedy request to each, against one standalone model server of one "
           "adapter (merged into its base, as `deployments create` serves it) after one "
           "request; one torch thread each.",
    "P12": "the same engine: completion tokens/s of 8 concurrent greedy requests (32 new "
           "tokens) over the 8 adapters (one mixed `generate(adapter_names=…)` batch) "
           "against 8 concurrent requests to one adapter; 5 alternating rounds; ratio: "
           "median over rounds.",
}


def figure_order(result: Result) -> int:
    """P2 before P10."""
    digits = result.id[1:]
    return int(digits) if digits.isdigit() else 0


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def rows(results: list[Result]) -> list[list[str]]:
    out = []
    for r in sorted(results, key=figure_order):
        if r.error:
            out.append([r.id, r.measure, "—", "—", "—", f"{r.goal_op} {r.goal:g}",
                        "error"])
            continue
        unit = f" {r.unit}"
        out.append([r.id, r.measure, fmt(r.tuneyard) + unit, fmt(r.baseline) + unit,
                    f"{r.ratio:.3f}", f"{r.goal_op} {r.goal:g}",
                    "pass" if r.passed else "MISS"])
    return out


HEADERS = ["#", "measure", "tuneyard", "baseline", "ratio", "goal", "result"]


def print_table(results: list[Result], *, title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text: rich is a tuneyard dependency, but be safe
        print(title)
        for row in [HEADERS, *rows(results)]:
            print(" | ".join(row))
        return
    table = Table(title=title)
    for name in HEADERS:
        table.add_column(name, justify="right" if name in ("tuneyard", "baseline", "ratio")
                         else "left")
    for row in rows(results):
        style = {"pass": "green", "MISS": "red", "error": "yellow"}[row[-1]]
        table.add_row(*row[:-1], f"[{style}]{row[-1]}[/{style}]")
    Console(width=160).print(table)
    for r in sorted(results, key=figure_order):
        if r.error:
            print(f"{r.id} error: {r.error}")


def markdown_table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    lines += ["", "Baselines:", ""]
    lines += [f"- {r.id}: {r.baseline_name}" for r in sorted(results, key=figure_order)]
    return "\n".join(lines)


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_json(path: Path, *, machine: dict, results: list[Result], meta: dict) -> None:
    path.write_text(json.dumps({**meta, "machine": machine,
                                "results": [r.to_json() for r in results]}, indent=2) + "\n")


def write_markdown(path: Path, *, machine: dict, results: list[Result], meta: dict) -> None:
    tools = ", ".join(f"{v}" for v in machine.get("tools", {}).values()) or "none"
    when = sorted({r.measured_at for r in results if r.measured_at})
    measured = when[-1] if len(when) == 1 else f"{when[0]} … {when[-1]}" if when else "?"
    lines = [
        "# tuneyard benchmark results",
        "",
        "Written by `make bench` (`python -m bench.run`). Each ratio compares tuneyard "
        "with a baseline measured in the same run on the same machine; the absolute "
        "numbers are context only (these machines are shared and noisy).",
        "",
        f"Measured {measured} UTC; full run took {meta.get('seconds', 0) / 60:.1f} min.",
        "",
        "## Machine",
        "",
        f"- CPU: {machine.get('cpu')}, {machine.get('cores')} cores "
        f"(torch threads: {machine.get('torch_threads')})",
        f"- RAM: {machine.get('ram_gib')} GiB",
        f"- torch {machine.get('torch')}, Python {machine.get('python')}, {machine.get('os')}",
        f"- tools: {tools}",
        f"- load average at start: {machine.get('load_average_at_start')} "
        "(other work shares this machine)",
        "",
        "## Latest table",
        "",
        markdown_table(results),
        "",
        "Load average (1 min) when each figure finished, a hint of how much other work "
        "shared the cores: " + ", ".join(
            f"{r.id} {r.details.get('load_average', '?')}"
            for r in sorted(results, key=figure_order) if not r.error) + ".",
        "",
    ]
    misses = [r for r in sorted(results, key=figure_order) if not r.passed]
    if misses:
        lines += ["## Misses: what limits them, what would close them", ""]
        for r in misses:
            text = f"error: {r.error}" if r.error else r.limits
            lines.append(f"- **{r.id}** (ratio {r.ratio:.3f}, goal {r.goal_op} {r.goal:g}): "
                         f"{text}")
        lines.append("")
    passed = [r for r in sorted(results, key=figure_order) if r.passed and r.limits]
    if passed:
        lines += ["## Passing figures: what is left in them", ""]
        lines += [f"- **{r.id}** (ratio {r.ratio:.3f}): {r.limits}" for r in passed]
        lines.append("")
    lines += ["## How each figure is measured", ""]
    lines += [f"- **{k}**: {v}" for k, v in HOW.items()]
    lines += ["", "Per-figure details (breakdowns, every sample, load averages) are in "
              "`bench/results.json` after a run.", ""]
    path.write_text("\n".join(lines))
