"""Regenerate the demo dataset: `python src/tuneyard/examples/generate.py`.

Two instructions on random three-letter strings, alternating:

    {"prompt": "upper: kem =>", "completion": " KEM"}
    {"prompt": "reverse: ubc =>", "completion": " cbu"}

The strings are random, so the test examples are strings the model never saw:
it can only get them right by learning the two rules (copy with a case change,
copy backwards). `tuneyard-tiny-lm` (2 layers, byte-level, random weights)
learns `upper` within the first epoch and `reverse` in the next two, so the
checkpoints' `exact_match` climbs visibly above the baseline's 0.
Seeded: the files are the same on every run.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = {"upper": str.upper, "reverse": lambda word: word[::-1]}
TRAIN, TEST = 1600, 32


def records(n: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    rows: list[dict[str, str]] = []
    names = list(RULES)
    while len(rows) < n:
        rule = names[len(rows) % len(names)]
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3))
        if (rule, word) in seen:
            continue
        seen.add((rule, word))
        rows.append({"prompt": f"{rule}: {word} =>", "completion": f" {RULES[rule](word)}"})
    return rows


def main() -> None:
    rows = records(TRAIN + TEST)
    for name, part in (("upper-reverse.train.jsonl", rows[:TRAIN]),
                       ("upper-reverse.test.jsonl", rows[TRAIN:])):
        (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in part))


if __name__ == "__main__":
    main()
