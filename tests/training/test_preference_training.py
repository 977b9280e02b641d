"""DPO and GRPO on the tiny LM: real TRL training through tuneyard's checkpoint
protocol, each method improving what it optimises, measured by the evaluation
the worker runs on every checkpoint.

- DPO, pairs built from a rule (chosen: the next three letters; rejected: the
  three before, backwards), trained on half the alphabet's prompts: preference
  accuracy on the held-out half rises from the base model's (0.62 on this seed)
  to at least 0.5 + DPO_MARGIN.
- GRPO, rewarded by the built-in exact_match only, on the rule "answer Y": the
  starting model is a brief supervised fine-tune that answered Y or N by the
  prompt's parity, so it knows the answer format but half its answers are
  wrong (greedy test reward 0.31 on this seed). GRPO raises the test set's
  mean reward (greedy generations) by at least GRPO_MARGIN.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneyard.checkpoints.reader import verify_checkpoint
from tuneyard.evaluation import evaluate_checkpoint
from tuneyard.training import JobSpec, resolve_parameters, run_job

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

ABC = "abcdefghijklmnopqrstuvwxyz"
DPO_MARGIN = 0.25
GRPO_MARGIN = 0.3


def letters(i: int, start: int, step: int = 1) -> str:
    return " ".join(ABC[(i + start + step * k) % 26] for k in range(3))


def pair(i: int) -> dict:
    return {"prompt": letters(i, 0), "chosen": " " + letters(i, 3),
            "rejected": " " + letters(i, 2, -1)}


def spec(model_path, train, evaluation, technique="SFT", reward=None, home=None,
         **params) -> JobSpec:
    return JobSpec(job_id=f"tr-{technique.lower()}", task_type="text-generation",
                   base_model="tuneyard-tiny-lm", model_path=str(model_path),
                   train_examples=train, eval_examples=evaluation,
                   hyper_parameters=resolve_parameters(params), technique=technique,
                   reward=reward, functions_home=str(home) if home else None)


def test_dpo_raises_preference_accuracy_on_held_out_pairs(tiny_lm, tmp_path, make_events):
    train = [pair(i) for i in range(0, 26, 2)]
    held_out = [pair(i) for i in range(1, 26, 2)]
    events = make_events()
    metrics: list[tuple[int, dict]] = []
    events.metrics = lambda step, values: metrics.append((step, values))
    summary = run_job(spec(tiny_lm, train, held_out, "DPO", num_train_epochs=4,
                           learning_rate=0.003, per_device_train_batch_size=8,
                           logging_steps=1, beta=0.1),
                      workdir=tmp_path / "run", events=events)
    assert summary["checkpoints"] == [1, 2, 3, 4] and not summary["stopped"]
    for number, path, manifest in events.checkpoints:
        assert verify_checkpoint(path)["number"] == number
        assert manifest["training_technique"] == "DPO" and not manifest["is_lora"]
        assert "state/optimizer.pt" in manifest["files"]
    # TRL's per-step metrics reach the events: reward accuracy and margins.
    assert [s for s, _ in metrics] == list(range(1, summary["steps"] + 1))
    assert {"rewards/accuracies", "rewards/margins"} <= set(metrics[-1][1])
    assert metrics[-1][1]["rewards/margins"] > metrics[0][1]["rewards/margins"]

    def accuracy(model_dir) -> float:
        result = evaluate_checkpoint(model_dir=str(model_dir), task_type="text-generation",
                                     examples=held_out, home=tmp_path, technique="DPO",
                                     generate_samples=0)
        return float(result.aggregated["preference_accuracy"])

    before, after = accuracy(tiny_lm), accuracy(events.checkpoints[-1][1])
    print(f"DPO held-out preference accuracy: {before:.3f} -> {after:.3f}")
    assert after >= 0.5 + DPO_MARGIN and after > before, (before, after)


def test_grpo_raises_the_test_reward(tiny_lm, tmp_path, make_events):
    prompts = [letters(i, 0) for i in range(26)]
    # The starting point: answers in the right format, by the wrong rule (parity).
    warm = make_events()
    run_job(spec(tiny_lm, [{"prompt": p, "completion": "Y" if i % 2 else "N"}
                           for i, p in enumerate(prompts)], [],
                 num_train_epochs=3, learning_rate=0.003, per_device_train_batch_size=8,
                 save_strategy="steps", save_steps=1000),
            workdir=tmp_path / "warm", events=warm)
    start = warm.checkpoints[-1][1]
    task = [{"prompt": p, "completion": "Y"} for p in prompts]
    test = task[::2]
    events = make_events()
    metrics: list[tuple[int, dict]] = []
    events.metrics = lambda step, values: metrics.append((step, values))
    summary = run_job(spec(start, task, test, "GRPO", reward={"exact_match": 1.0},
                           home=tmp_path, num_train_epochs=2, learning_rate=0.002,
                           per_device_train_batch_size=16, num_generations=4,
                           max_completion_length=2, temperature=1.0, beta=0.0,
                           logging_steps=2, save_strategy="epoch"),
                      workdir=tmp_path / "grpo", events=events)
    assert summary["checkpoints"] == [1, 2]
    manifest = events.checkpoints[-1][2]
    assert manifest["training_technique"] == "GRPO"
    assert manifest["reward"] == {"exact_match": 1.0}
    rewards = [values["reward"] for _, values in metrics]  # mean reward per logging step
    assert len(rewards) >= 5 and max(rewards[-3:]) > rewards[0]

    def reward(model_dir: Path) -> float:
        result = evaluate_checkpoint(model_dir=str(model_dir), task_type="text-generation",
                                     examples=test, home=tmp_path, technique="GRPO",
                                     test_functions=["exact_match"],
                                     reward={"exact_match": 1.0})
        return float(result.aggregated["reward"])

    before, after = reward(start), reward(events.checkpoints[-1][1])
    print(f"GRPO test reward (exact_match): {before:.3f} -> {after:.3f}")
    assert after >= before + GRPO_MARGIN, (before, after)
