"""GRPO's reward: a weighted sum of test functions, each applied to
(input, expected output, completion).

The functions are the evaluation's own (built-ins and the administrator's
files: `evaluation.functions`), called with the same time limit and the same
rules (`run_test_function`). A function that raises, times out or returns no
number adds 0 to that completion's reward: the completion earns nothing from
it, and training goes on. A weight of 0 turns a function off (it is not
called), so `{f: 1, g: 0}` rewards exactly as `{f: 1}`.

Pure Python: the API and tests can build and check one without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from tuneyard.evaluation.functions import get_test_function, run_test_function

REWARD_NAME = "tuneyard_reward"
"""The reward function's name in the trainer's logs (`rewards/tuneyard_reward/mean`)."""


def completion_text(completion) -> str:
    """TRL hands a completion as text, or (chat prompts) as a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return "" if completion is None else str(completion)


def prompt_text(prompt) -> str:
    if isinstance(prompt, list):
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt
                         if isinstance(m, dict))
    return completion_text(prompt)


class WeightedReward:
    """A TRL reward function: `reward(prompts=..., completions=..., expected=...)` → one
    float per completion, the weighted sum of the named test functions."""

    __name__ = REWARD_NAME

    def __init__(self, weights: dict[str, float], *, home: Path | str,
                 timeout_s: float = 5.0,
                 functions: dict[str, Callable] | None = None):
        for name, weight in weights.items():
            if not isinstance(weight, int | float) or isinstance(weight, bool) \
                    or not math.isfinite(weight):
                raise ValueError(f"reward weight of {name!r} must be a finite number, "
                                 f"got {weight!r}")
        self.weights = {name: float(w) for name, w in weights.items() if w != 0}
        if not self.weights:
            raise ValueError("every reward weight is 0: nothing would be rewarded")
        self.timeout_s = timeout_s
        # Loaded once per run (an administrator's file is imported here).
        self.functions = functions or {name: get_test_function(name, Path(home))
                                       for name in self.weights}
        self.errors: dict[str, str] = {}
        """The first failure of each function, for the logs."""

    def score(self, input_text: str, expected: str, completion: str) -> tuple[float, dict]:
        """(reward, {function: score or None}) of one completion."""
        total, parts = 0.0, {}
        for name, weight in self.weights.items():
            value, error = run_test_function(self.functions[name], input_text, expected,
                                             completion, timeout_s=self.timeout_s)
            if error is not None:
                self.errors.setdefault(name, error)
            parts[name] = value
            total += weight * (value or 0.0)
        return total, parts

    def __call__(self, prompts: Sequence, completions: Sequence,
                 expected: Sequence[str] | None = None, log_metric=None,
                 **_: object) -> list[float]:
        expected = list(expected) if expected is not None else [""] * len(completions)
        rewards, sums = [], dict.fromkeys(self.weights, 0.0)
        for prompt, completion, target in zip(prompts, completions, expected, strict=True):
            total, parts = self.score(prompt_text(prompt), target or "",
                                      completion_text(completion))
            rewards.append(total)
            for name, value in parts.items():
                sums[name] += value or 0.0
        if log_metric is not None and len(self.weights) > 1 and rewards:
            for name, value in sums.items():  # each function's own mean, unweighted
                log_metric(f"test_functions/{name}", value / len(rewards))
        return rewards
