"""What the benchmarks measure on: a Llama-style LM large enough that saving it
takes real time, fixed-length training examples, and a metadata database
seeded directly through tuneyard's own tables.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import string
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import CACHE, Process, free_port, pinned, wait_http

BENCH_KEY = "ty_bench-0123456789abcdefghijklmnopqrstuvwxyz"
PROMPT_CHARS = COMPLETION_CHARS = 31  # + BOS + EOS: 64 tokens with the byte tokenizer


@dataclass(frozen=True)
class LMShape:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int

    @property
    def name(self) -> str:
        return f"lm-v{self.vocab}-h{self.hidden}-l{self.layers}"


# Full runs: 8 layers, hidden 512, a 32k vocabulary (tied): 42M parameters, a
# 0.5 GB checkpoint with its AdamW state. Quick runs: something that loads in
# a blink, only to prove the code paths run.
FULL_LM = LMShape(vocab=32000, hidden=512, intermediate=1408, layers=8, heads=8)
QUICK_LM = LMShape(vocab=512, hidden=64, intermediate=128, layers=2, heads=4)


def lm_shape(quick: bool) -> LMShape:
    return QUICK_LM if quick else FULL_LM


def build_lm(shape: LMShape) -> Path:
    """The model directory (config, weights, byte-level tokenizer), built once and cached."""
    path = CACHE / "models" / shape.name
    if (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file():
        return path
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from tuneyard.models.builtin import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=max(shape.vocab, len(tokenizer)), hidden_size=shape.hidden,
        intermediate_size=shape.intermediate, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.heads,
        max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    os.rename(tmp, path)
    return path


def parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as fh:
        total = 0
        for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
            shape = fh.get_slice(key).get_shape()
            count = 1
            for dim in shape:
                count *= dim
            total += count
    return total


def examples(count: int, *, seed: int = 0) -> list[dict]:
    """Prompt/completion records that are all exactly 64 tokens long (byte-level
    tokenizer: one token per ASCII character, plus BOS and EOS), so every batch
    has the same shape and the same cost whatever order a sampler picks."""
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + " "

    def text(n: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    return [{"prompt": text(PROMPT_CHARS), "completion": text(COMPLETION_CHARS)}
            for _ in range(count)]


# -- the metadata database -----------------------------------------------------------------


def sqlite_url(home: Path) -> str:
    return f"sqlite:///{Path(home) / 'tuneyard.db'}"


def open_db(url: str):
    """Migrate `url` to head and return an engine on it."""
    from tuneyard.db import make_engine, upgrade

    upgrade(url)
    return make_engine(url)


def seed_owner(session, *, key: str = BENCH_KEY, name: str = "bench"):
    """A user holding `key` (the server's bootstrap key then finds it registered)."""
    from tuneyard.services.keys import create_user, register_key

    user = create_user(session=session, name=name, is_admin=True)
    register_key(session=session, user=user, name=name, key=key)
    return user


def add_project(session, owner, name: str = "bench"):
    from tuneyard.ids import new_id
    from tuneyard.tables import Project

    project = Project(id=new_id("ms"), name=name, owner_id=owner.id)
    session.add(project)
    session.flush()
    return project


def job_row(project_id: str, owner_id: str, *, name: str, status: str = "Success",
            hyper_parameters: dict | None = None, loss_points: int = 50) -> dict:
    """Column values of a finished text-generation job (a loss curve included, as
    real jobs have: listing reads whole rows)."""
    from tuneyard.ids import new_id
    from tuneyard.training.params import resolve_parameters

    stamp = int(time.time())
    return {
        "id": new_id("tr"), "project_id": project_id, "name": name,
        "base_model": "bench-lm", "base_model_option": "pre-trained",
        "task_type": "text-generation", "split": {"test_fraction": 0.1, "seed": 42},
        "hyper_parameters": hyper_parameters or resolve_parameters({}),
        "status": status, "progress": 100 if status == "Success" else 0,
        "training_loss": [{"timestamp": stamp + i, "loss": 2.0 / (i + 1), "step": 10 * i}
                          for i in range(loss_points)],
        "created_by": owner_id, "created_at": stamp, "updated_at": stamp,
        "started_at": stamp, "finished_at": stamp if status == "Success" else None,
        "attempts": 1,
    }


def checkpoint_row(job_id: str, project_id: str, number: int, *, archive_size: int = 1 << 28,
                   with_results: bool = True) -> dict:
    """Column values of a published, evaluated checkpoint."""
    stamp = int(time.time())
    prefix = f"projects/{project_id}/jobs/{job_id}/"
    row = {
        "job_id": job_id, "number": number, "step": 100 * number, "epoch": float(number),
        "storage_prefix": f"{prefix}checkpoints/{number:06d}/",
        "archive_key": f"{prefix}checkpoints/{number:06d}.tar",
        "archive_sha256": f"{number:064x}", "archive_size": archive_size,
        "eval_loss": 1.0 / number, "test_status": "pending", "test_results": None,
        "created_at": stamp, "updated_at": stamp,
    }
    if with_results:
        row["test_status"] = "done"
        row["test_results"] = {
            "general_test_result_key": f"{prefix}results/{number:06d}.jsonl",
            "details_key": f"{prefix}results/{number:06d}.details.json",
            "aggregated_test_result": {"loss": 1.0 / number, "perplexity": 2.7 / number,
                                       "rougeL": 0.3, "bleu": 12.5},
        }
    return row


def bulk_insert(session, table, rows: list[dict], *, batch: int = 5000) -> None:
    from sqlalchemy import insert

    for start in range(0, len(rows), batch):
        session.execute(insert(table), rows[start:start + batch])


def server_env(home: Path, *, key: str = BENCH_KEY) -> dict[str, str]:
    """Environment of a `tuneyard serve` on this home (its defaults otherwise)."""
    return {
        "TUNEYARD_HOME": str(home),
        "TUNEYARD_BOOTSTRAP_API_KEY": key,
        "TUNEYARD_EMBEDDED_WORKER": "false",
        "HF_HUB_OFFLINE": "1",
        # Other settings stay at their defaults: that is what a user runs.
    }


def running_job(home: Path, hyper_parameters: dict | None = None):
    """(engine, job): a fresh database under `home` holding one Running job, as the
    worker's child sees it (`DbEvents` needs the row)."""
    from sqlalchemy.orm import Session

    from tuneyard.tables import TrainingJob

    engine = open_db(sqlite_url(home))
    with Session(engine, expire_on_commit=False) as session:
        owner = seed_owner(session)
        project = add_project(session, owner)
        job = TrainingJob(**job_row(project.id, owner.id, name="bench", status="Running",
                                    hyper_parameters=hyper_parameters, loss_points=0))
        job.progress = 0
        session.add(job)
        session.commit()
    return engine, job


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def tuneyard_server(home: Path, *, log_path: Path, cpus: str | None = None,
                    env: dict | None = None, worker: bool = False) -> Iterator[Server]:
    """`tuneyard serve --no-worker` on `home`, on a free loopback port (with
    `worker`, `tuneyard serve` with its embedded worker)."""
    port = free_port()
    argv = [sys.executable, "-m", "tuneyard.cli", "serve",
            "--worker" if worker else "--no-worker",
            "--host", "127.0.0.1", "--port", str(port)]
    with Process(pinned(argv, cpus), log_path=log_path,
                 env={**server_env(home), **(env or {})}) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc)
        yield Server(url, proc.pid)


@contextlib.contextmanager
def uvicorn_app(app: str, *, log_path: Path, env: dict,
                cpus: str | None = None) -> Iterator[Server]:
    """`uvicorn <app>` with its defaults (as `tuneyard serve` runs it: access log on)."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "info"]
    with Process(pinned(argv, cpus), log_path=log_path, env=env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc)
        yield Server(url, proc.pid)
