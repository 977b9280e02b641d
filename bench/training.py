"""P1 (training throughput) and P2 (time the loop is blocked per checkpoint).

Two arms on the same model, data, batch and steps:

- tuneyard: `run_job` exactly as the worker's child calls it, with the
  worker's own `DbEvents` (a real SQLite database and local artifact store)
  wrapped to timestamp every `should_stop` poll, which the publisher makes
  once per optimizer step. A checkpoint's cost shows in the step after it.
- bare: a plain PyTorch loop (forward, backward, clip, fused AdamW, linear
  schedule) that, at the same steps, saves weights + optimizer state
  synchronously and durably (safetensors + torch.save, fsync): P2's baseline.

The arms run in lockstep, in two processes: tuneyard's step k, then the bare
loop's step k, then tuneyard's step k+1 … handing a baton back and forth
through two FIFOs, and each step is timed only while its arm holds the baton.
On a shared machine whose load comes and goes, both arms' step k then meet
the same load: pairing beats any amount of repetition.

    python -m bench.training ARM CONFIG_JSON OUT_JSON WORKDIR   (one arm; run() calls it)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import (
    REPO,
    Result,
    fsync_path,
    load_average,
    median,
    percentile,
    ratio_of,
    scratch_dir,
)
from bench.fixtures import build_lm, examples, lm_shape, parameter_count

WARMUP_STEPS = 3
SEQ = 64  # tokens per example (fixtures.examples)


def plan(quick: bool) -> dict:
    if quick:
        return {"batch": 4, "max_steps": 8, "save_steps": 4, "train": 64, "eval": 4}
    # Checkpoints far enough apart for a background write to finish between them
    # (as in real jobs, which save every few hundred steps); a tenth of the data
    # held out, as the default split does, for the eval loss of each checkpoint.
    return {"batch": 8, "max_steps": 22, "save_steps": 7, "train": 200, "eval": 20}


def hyper_parameters(cfg: dict) -> dict:
    from tuneyard.training.params import resolve_parameters

    return resolve_parameters({
        "max_steps": cfg["max_steps"], "save_strategy": "steps", "save_steps": cfg["save_steps"],
        "per_device_train_batch_size": cfg["batch"], "per_device_eval_batch_size": cfg["batch"],
        "learning_rate": 1e-4, "max_seq_length": SEQ,
    })


class Baton:
    """Lockstep between the arms through two FIFOs in `directory` (made by `make`).

    The tuneyard arm leads: after each of its steps it `give`s and `take`s; the
    bare arm `take`s before each step and `give`s after it. Once the other arm
    has gone (end of file), taking returns at once: the leader runs on alone.
    """

    def __init__(self, directory: Path, role: str):
        self.directory, self.role = Path(directory), role
        self.out = self.inp = None
        self.peer_gone = False

    @staticmethod
    def make(directory: Path) -> None:
        for name in ("to_bare", "to_tuneyard"):
            os.mkfifo(Path(directory) / name)

    def _open(self) -> None:
        if self.out is not None:
            return
        # Both open to_bare first: opening a FIFO blocks until its other end opens.
        if self.role == "tuneyard":
            self.out = open(self.directory / "to_bare", "wb", buffering=0)  # noqa: SIM115
            self.inp = open(self.directory / "to_tuneyard", "rb", buffering=0)  # noqa: SIM115
        else:
            self.inp = open(self.directory / "to_bare", "rb", buffering=0)  # noqa: SIM115
            self.out = open(self.directory / "to_tuneyard", "wb", buffering=0)  # noqa: SIM115

    def give(self) -> None:
        self._open()
        if not self.peer_gone:
            try:
                self.out.write(b".")
            except BrokenPipeError:
                self.peer_gone = True

    def take(self) -> None:
        self._open()
        if not self.peer_gone and self.inp.read(1) != b".":
            self.peer_gone = True

    def close(self) -> None:
        for fh in (self.out, self.inp):
            if fh is not None:
                fh.close()


# -- the tuneyard arm ---------------------------------------------------------------------


class TimedEvents:
    """The worker's events; each `should_stop` poll ends a step and hands the baton."""

    def __init__(self, inner, baton: Baton):
        self.inner, self.baton = inner, baton
        self.ends: list[float] = []  # when each step ended (its should_stop poll)
        self.resumes: list[float] = []  # when the baton came back after it
        self.cpu_ends: list[float] = []  # the same in this process's CPU time
        self.cpu_resumes: list[float] = []
        self.checkpoints: list[dict] = []

    def progress(self, percent: int) -> None:
        self.inner.progress(percent)

    def loss(self, step: int, value: float) -> None:
        self.inner.loss(step, value)

    def checkpoint(self, number: int, path: Path, manifest: dict) -> None:
        start = time.perf_counter()
        self.inner.checkpoint(number, path, manifest)
        self.checkpoints.append({"number": number, "step": manifest["step"], "start": start,
                                 "end": time.perf_counter(),
                                 "thread": threading.current_thread().name})

    def should_stop(self) -> bool:
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        self.baton.give()
        self.baton.take()
        self.resumes.append(time.perf_counter())
        self.cpu_resumes.append(time.process_time())
        return self.inner.should_stop()


def time_checkpoints(saves: list[dict]) -> None:
    """Time the Trainer's save point: `_maybe_log_save_evaluate` with `should_save` set
    runs the Trainer's own save and the `on_save` callbacks (tuneyard's publisher and,
    through it, the worker's events) — exactly what the loop waits for."""
    from transformers import Trainer

    original = Trainer._maybe_log_save_evaluate
    if getattr(original, "_bench_timed", False):
        return

    def timed(self, *args, **kwargs):
        saving = bool(self.control.should_save)
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            if saving:
                entry = {"step": self.state.global_step, "start": start,
                         "end": time.perf_counter()}
                # tuneyard's publisher keeps its own account of each hold (wait for a
                # slot, copy, eval loss, and later the next step's wait for copies it
                # deferred) in `timings`: keep a reference (it is completed later).
                for callback in self.callback_handler.callbacks:
                    timings = getattr(callback, "timings", None)
                    if isinstance(timings, list) and timings and isinstance(timings[-1], dict):
                        entry["publisher"] = timings[-1]
                saves.append(entry)

    timed._bench_timed = True
    Trainer._maybe_log_save_evaluate = timed


def tuneyard_arm(cfg: dict, work: Path, baton: Baton) -> dict:
    from bench.fixtures import running_job
    from tuneyard.storage.local import LocalStore
    from tuneyard.training import JobSpec, run_job
    from tuneyard.worker.child import DbEvents

    params = hyper_parameters(cfg)
    engine, job = running_job(work, params)
    store = LocalStore(work / "artifacts")
    events = TimedEvents(DbEvents(engine=engine, store=store, job=job, workdir=work / "job",
                                  parent_pid=os.getppid()), baton)
    spec = JobSpec(job_id=job.id, task_type="text-generation", base_model="bench-lm",
                   model_path=cfg["model_dir"], train_examples=examples(cfg["train"]),
                   eval_examples=examples(cfg["eval"], seed=1), hyper_parameters=params,
                   eval_loss_in_loop=False)  # as the worker's child: evaluation computes it
    saves: list[dict] = []
    time_checkpoints(saves)
    try:
        run_job(spec, workdir=work / "job" / "run", events=events)
    finally:
        baton.close()
        engine.dispose()
    # Step k (k >= 2) ran from the baton's return after step k-1 to its own poll.
    steps = {k + 1: (events.resumes[k - 1], events.ends[k]) for k in range(1, len(events.ends))}
    cpu = {k + 1: events.cpu_ends[k] - events.cpu_resumes[k - 1]
           for k in range(1, len(events.cpu_ends))}
    root = work / "job" / "run" / "checkpoints"
    size = sum(p.stat().st_size for p in root.glob("000001/**/*") if p.is_file())
    return {"steps": steps, "cpu": cpu, "checkpoints": events.checkpoints, "saves": saves,
            "checkpoint_bytes": size}


# -- the bare arm ------------------------------------------------------------------------------


def bare_arm(cfg: dict, work: Path, baton: Baton) -> dict:
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneyard.training.features import completion_features

    torch.manual_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(cfg["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(cfg["model_dir"], dtype=torch.float32)
    model.train()
    features = [completion_features(tokenizer, e["prompt"], e["completion"], SEQ)
                for e in examples(cfg["train"])]
    assert all(len(f["input_ids"]) == SEQ for f in features), "examples must be 64 tokens"
    order = torch.randperm(len(features)).tolist()
    batch, max_steps = cfg["batch"], cfg["max_steps"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / max_steps))

    def batch_at(step: int) -> dict:
        picked = [features[order[(step * batch + i) % len(order)]] for i in range(batch)]
        ids = torch.tensor([f["input_ids"] for f in picked])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.tensor([f["labels"] for f in picked])}

    steps, cpu, saves = {}, {}, []
    save_dir = work / "save"
    try:
        for step in range(1, max_steps + 1):
            baton.take()
            start, cpu_start = time.perf_counter(), time.process_time()
            loss = model(**batch_at(step - 1)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            steps[step] = time.perf_counter() - start
            cpu[step] = time.process_time() - cpu_start
            if step % cfg["save_steps"] == 0 and step < max_steps:
                save_dir.mkdir(parents=True, exist_ok=True)
                start = time.perf_counter()
                save_model(model, str(save_dir / "model.safetensors"))
                torch.save(optimizer.state_dict(), save_dir / "optimizer.pt")
                for name in ("model.safetensors", "optimizer.pt"):
                    fsync_path(save_dir / name)
                fsync_path(save_dir)
                seconds = time.perf_counter() - start
                size = sum(p.stat().st_size for p in save_dir.iterdir())
                saves.append({"step": step, "seconds": seconds, "bytes": size})
                shutil.rmtree(save_dir)
            baton.give()
    finally:
        baton.close()
    # What an asynchronous checkpoint cannot avoid on this machine: copying the
    # state to a snapshot in host memory.
    unique = {v.data_ptr(): v for v in model.state_dict().values()}  # tied weights once
    tensors = [v.detach() for v in unique.values()]
    tensors += [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    eval_features = [completion_features(tokenizer, e["prompt"], e["completion"], SEQ)
                     for e in examples(cfg["eval"], seed=1)]
    model.eval()
    evals = []
    for _ in range(2):  # what an eval loss over the held-out set costs, for reference
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(eval_features), batch):
                ids = torch.tensor([f["input_ids"] for f in eval_features[i:i + batch]])
                model(input_ids=ids, attention_mask=torch.ones_like(ids))
        evals.append(time.perf_counter() - start)
    copies = []
    for _ in range(3):
        start = time.perf_counter()
        snapshot = [v.clone() for v in tensors]
        copies.append(time.perf_counter() - start)
        del snapshot
    snapshot_seconds = min(copies)
    return {"steps": steps, "cpu": cpu, "saves": saves, "snapshot_seconds": snapshot_seconds,
            "eval_seconds": min(evals)}


# -- analysis ----------------------------------------------------------------------------


def _cpu_ratio(bare: dict, ty: dict, steady: list[int]) -> float | None:
    b = {int(k): v for k, v in bare.get("cpu", {}).items()}
    t = {int(k): v for k, v in ty.get("cpu", {}).items()}
    pairs = [b[k] / t[k] for k in steady if k in b and t.get(k)]
    return median(pairs) if pairs else None


def analyse(cfg: dict, bare: dict, ty: dict, tokens_per_step: int) -> list[Result]:
    max_steps = cfg["max_steps"]
    spans = {int(k): v for k, v in ty["steps"].items()}
    ty_steps = {k: end - start for k, (start, end) in spans.items()}
    bare_steps = {int(k): v for k, v in bare["steps"].items()}
    saves = {s["step"]: s for s in ty["saves"]}
    events = {c["step"]: c for c in ty["checkpoints"]}
    # Checkpoint work runs from the save point to the worker's event (on the loop
    # when checkpointing is synchronous, partly on a writer thread when not).
    busy = [(saves[s]["start"], max(saves[s]["end"], events[s]["end"] if s in events else 0))
            for s in saves]

    def clean(k: int) -> bool:
        start, end = spans[k]
        return all(end <= b_start or start >= b_end for b_start, b_end in busy)

    # Steady state: after warm-up, in both arms, with no checkpoint work under way.
    steady = [k for k in range(WARMUP_STEPS + 1, max_steps + 1)
              if k in spans and k in bare_steps and clean(k)]
    overlapped = [k for k in range(WARMUP_STEPS + 1, max_steps + 1)
                  if k in spans and k in bare_steps and not clean(k)]
    ty_steady, bare_steady = [ty_steps[k] for k in steady], [bare_steps[k] for k in steady]
    # The ratio is the median over pairs (tuneyard's step k against the bare loop's
    # step k, run right after it): load that comes and goes hits both of a pair
    # alike, so the pairs' ratios are far steadier than either arm's times.
    paired = median([bare_steps[k] / ty_steps[k] for k in steady])
    ty_tps = tokens_per_step / median(ty_steady)
    bare_tps = tokens_per_step / median(bare_steady)
    window = [v for k, v in ty_steps.items() if k > WARMUP_STEPS]
    p1 = Result(
        id="P1", measure="training throughput, steady state (tokens/s)", unit="tokens/s",
        tuneyard=ty_tps, baseline=bare_tps, ratio=paired, goal_op=">=",
        goal=0.95, baseline_name="bare PyTorch loop, same model/data/batch/steps",
        details={
            "tokens_per_step": tokens_per_step, "steady_steps": steady,
            "tuneyard_step_s": {"min": min(ty_steady), "median": median(ty_steady)},
            "bare_step_s": {"min": min(bare_steady), "median": median(bare_steady),
                            "p25": percentile(bare_steady, 25),
                            "p75": percentile(bare_steady, 75)},
            "ratio_of_medians": ratio_of(ty_tps, bare_tps),
            # CPU time (both processes, all threads) is less disturbed by other work
            # than wall time: a cross-check of the wall-clock ratio on a busy machine.
            "cpu_time_paired_ratio": _cpu_ratio(bare, ty, steady),
            "ratio_of_fastest": ratio_of(min(bare_steady), min(ty_steady)),
            "steps_during_checkpoint_work": {
                "steps": overlapped,
                "paired_ratio_median": median([bare_steps[k] / ty_steps[k]
                                               for k in overlapped]) if overlapped else None},
            "tuneyard_tokens_per_s_with_checkpoints":
                tokens_per_step * len(window) / sum(window) if window else None,
            "checkpoint_every_steps": cfg["save_steps"],
            "steps": {"tuneyard": ty_steps, "bare": bare_steps},
        },
    )
    # Blocked: the Trainer's save point, timed directly (see time_checkpoints).
    blocked = []
    for step, save in sorted(saves.items()):
        if step >= max_steps:
            continue
        event = events.get(step)
        held = save.get("publisher") or {}
        # A copy deferred past the save point makes the next optimizer step wait:
        # that wait blocks the loop too (the publisher reports it; nothing else can).
        deferred = float(held.get("deferred_wait_s") or 0.0)
        blocked.append({
            "step": step, "seconds": save["end"] - save["start"] + deferred,
            "save_point_s": save["end"] - save["start"], "deferred_wait_s": deferred,
            "publisher": held or None,
            "worker_events_s": event["end"] - event["start"] if event else None,
            "worker_events_in_loop": bool(event and save["start"] <= event["start"]
                                          and event["end"] <= save["end"]),
            "checkpoint_work_s": (event["end"] - save["start"]) if event else None,
            "step_after_s": ty_steps.get(step + 1),
        })
    final = saves.get(max_steps)
    base_saves = bare["saves"]
    base_by_step = {s["step"]: s["seconds"] for s in base_saves}
    # The fastest of each: a hold is mostly computation (copy, eval loss) and a save
    # mostly I/O, so load on the machine does not hit a pair alike, and it only ever
    # adds time; with three checkpoints the fastest is the steadiest estimate.
    ty_blocked = min(b["seconds"] for b in blocked)
    base_save = min(s["seconds"] for s in base_saves)
    pairs = [b["seconds"] / base_by_step[b["step"]] for b in blocked if b["step"] in base_by_step]
    p2 = Result(
        id="P2", measure="training loop blocked per checkpoint (s)", unit="s",
        tuneyard=ty_blocked, baseline=base_save, ratio=ratio_of(ty_blocked, base_save),
        goal_op="<=", goal=0.02,
        baseline_name="synchronous durable save, weights + optimizer, fsync",
        details={
            "checkpoints_measured": len(blocked), "blocked": blocked, "paired_ratios": pairs,
            "ratio_of_medians": ratio_of(median([b["seconds"] for b in blocked]),
                                         median([s["seconds"] for s in base_saves])),
            "baseline_saves": base_saves,
            "checkpoint_bytes": ty["checkpoint_bytes"],
            "baseline_bytes": base_saves[0]["bytes"] if base_saves else None,
            "final_checkpoint_s": final["end"] - final["start"] if final else None,
            "eval_examples": cfg["eval"],
            "eval_loss_forward_s": bare["eval_seconds"],
            "snapshot_copy_s": bare["snapshot_seconds"],
            "snapshot_floor_ratio": ratio_of(bare["snapshot_seconds"], base_save),
        },
    )
    return [p1, p2]


def limits(p1: Result, p2: Result) -> None:
    d1 = p1.details
    p1.limits = (
        f"median steady step {d1['tuneyard_step_s']['median']:.2f}s against "
        f"{d1['bare_step_s']['median']:.2f}s bare (fastest {d1['tuneyard_step_s']['min']:.2f}s "
        f"and {d1['bare_step_s']['min']:.2f}s). Beyond the math both arms do, the job runs "
        "the Trainer's per-step machinery and tuneyard's callback, whose events write "
        "the database (progress each percent, the loss every logging step) and poll it "
        "for cancellation each second. Profile one steady step of both arms before "
        "optimising: on a shared machine a few percent is within run-to-run spread."
    )
    d2 = p2.details
    in_loop = [b for b in d2["blocked"] if b["worker_events_in_loop"]]
    where = ("synchronously, in the loop: the Trainer's save, publish (fsync, sha256) and "
             "the worker's copy into the store, archive and DB row"
             if in_loop else "in the background after a snapshot")
    fastest = min(d2["blocked"], key=lambda b: b["seconds"])
    held = fastest.get("publisher") or {}
    account = ""
    if {"wait_s", "snapshot_s", "eval_s"} <= held.keys():
        account = (f" By the publisher's own account, that hold was {held['eval_s']:.3f}s "
                   f"computing the eval loss, {held['snapshot_s']:.3f}s taking the snapshot, "
                   f"{held['wait_s']:.3f}s waiting for a free slot and "
                   f"{fastest['deferred_wait_s']:.3f}s of the next step waiting for "
                   "deferred copies.")
    slow = d1["steps_during_checkpoint_work"]["paired_ratio_median"]
    background = ""
    if not in_loop and slow:
        work = median([b["checkpoint_work_s"] for b in d2["blocked"] if b["checkpoint_work_s"]])
        background = (f" While a checkpoint is written in the background (about {work:.0f}s "
                      f"each here, on a thread 10 nice levels below training), training "
                      f"steps run at {slow:.2f} of the bare loop's speed (1.00 would be no "
                      "slowdown; the steady-state ratio is P1's).")
    p2.limits = (
        f"the loop waits {p2.tuneyard:.3f}s per checkpoint (fastest of "
        f"{d2['checkpoints_measured']}) against {p2.baseline:.2f}s for one durable save of "
        f"the same state; the checkpoint is written {where}.{account}{background} "
        f"For scale: the eval loss over the {d2['eval_examples']} held-out examples, no "
        f"longer computed in the loop (the evaluation process records it), costs "
        f"{d2['eval_loss_forward_s']:.2f}s on this machine, and a full host-memory copy of "
        f"weights + AdamW state {d2['snapshot_copy_s']:.2f}s (deferred: made on the "
        "writer's thread while the next forward/backward runs). What remains in the hold "
        "is the Trainer's save point itself (the callbacks, the small state copied at "
        "once: buffers, scheduler, RNG, trainer_state.json) and, on a loaded machine, the "
        "next optimizer step waiting for the deferred copy."
    )


def _run_threads(cfg: dict, work: Path) -> dict:
    """Both arms in this process, one thread each (quick mode: one torch import)."""
    # Import first, here: transformers' lazy imports are not safe from two threads.
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer  # noqa: F401

    import tuneyard.training.recipes.text_generation  # noqa: F401
    import tuneyard.training.run  # noqa: F401
    import tuneyard.worker.child  # noqa: F401

    outputs, errors = {}, []

    def arm(name: str) -> None:
        try:
            main([name, json.dumps(cfg), str(work / f"{name}.json"), str(work)])
            outputs[name] = json.loads((work / f"{name}.json").read_text())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=arm, args=(name,), daemon=True)
               for name in ("tuneyard", "bare")]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 900
    while any(t.is_alive() for t in threads) and not errors and time.monotonic() < deadline:
        time.sleep(0.2)
    if errors:
        raise errors[0]
    if len(outputs) != 2:
        raise RuntimeError("the training arms did not finish in 900s")
    return outputs


def _run_processes(cfg: dict, work: Path, log_dir: Path) -> dict:
    """Both arms as child processes; if one fails, the other is stopped."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    procs = {}
    for name in ("tuneyard", "bare"):
        log = open(log_dir / f"training-{name}.log", "ab")  # noqa: SIM115 - closed below
        procs[name] = (subprocess.Popen(
            [sys.executable, "-m", "bench.training", name, json.dumps(cfg),
             str(work / f"{name}.json"), str(work)],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env), log)
    try:
        deadline = time.monotonic() + 1800
        while True:
            codes = {n: p.poll() for n, (p, _) in procs.items()}
            failed = [n for n, c in codes.items() if c not in (None, 0)]
            if failed or time.monotonic() > deadline:
                name = failed[0] if failed else "tuneyard"
                tail = (log_dir / f"training-{name}.log").read_bytes()[-4000:].decode(
                    errors="replace")
                raise RuntimeError(f"training arm {name} failed ({codes[name]}):\n{tail}")
            if all(c == 0 for c in codes.values()):
                break
            time.sleep(0.5)
    finally:
        for proc, log in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    return {name: json.loads((work / f"{name}.json").read_text()) for name in procs}


def run(*, quick: bool, log_dir: Path) -> list[Result]:
    cfg = {**plan(quick), "model_dir": str(build_lm(lm_shape(quick)))}
    work = scratch_dir("train")
    try:
        Baton.make(work)
        outputs = _run_threads(cfg, work) if quick else _run_processes(cfg, work, log_dir)
        p1, p2 = analyse(cfg, outputs["bare"], outputs["tuneyard"], cfg["batch"] * SEQ)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    params = parameter_count(Path(cfg["model_dir"]))
    for r in (p1, p2):
        r.details.update(model_parameters=params, batch=cfg["batch"], max_steps=cfg["max_steps"],
                         load_average=load_average())
    limits(p1, p2)
    return [p1, p2]


def main(argv: list[str]) -> int:
    arm, cfg, out, work = argv[0], json.loads(argv[1]), Path(argv[2]), Path(argv[3])
    baton = Baton(work, arm)
    arm_work = work / arm
    arm_work.mkdir()
    fn = tuneyard_arm if arm == "tuneyard" else bare_arm
    out.write_text(json.dumps(fn(cfg, arm_work, baton)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
