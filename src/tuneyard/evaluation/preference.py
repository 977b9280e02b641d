"""Preference evaluation (DPO jobs): does the model score the chosen answer above
the rejected one?

For each {prompt, chosen, rejected} pair, both answers are scored as text
generation scores a completion (`textgen.encode` / `textgen.score`: after the
prompt with the tokenizer's special tokens, EOS included; chat pairs through
the chat template). The pair is right when the chosen answer's summed
log-probability is higher. Metrics: `preference_accuracy` (the share right),
`logp_margin` (mean chosen minus rejected log-probability), `chosen_loss` and
`rejected_loss` (per-token). The first `generate_samples` prompts are also
answered greedily, so test functions score the generation against the chosen
answer.
"""

from __future__ import annotations

import math

from tuneyard.evaluation import metrics
from tuneyard.evaluation.textgen import encode, generate, score, transcript


def _as_generation_example(prompt, answer) -> dict:
    if isinstance(answer, list):
        messages = ([{"role": "user", "content": prompt}] if isinstance(prompt, str) and prompt
                    else list(prompt) if isinstance(prompt, list) else [])
        return {"messages": messages + list(answer)}
    text = prompt if isinstance(prompt, str) else transcript(prompt)
    return {"prompt": text, "completion": answer}


def _answer_text(answer) -> str:
    if isinstance(answer, list):
        return "".join(str(m.get("content", "")) for m in answer if m.get("role") == "assistant")
    return answer


def evaluate_preferences(*, model, tokenizer, examples: list[dict], generate_samples: int,
                         max_seq_length: int, batch_size: int) -> tuple[list[dict], dict, dict]:
    """(rows, metrics as floats, details)."""
    chosen = [encode(tokenizer, _as_generation_example(e["prompt"], e["chosen"]),
                     max_seq_length) for e in examples]
    rejected = [encode(tokenizer, _as_generation_example(e["prompt"], e["rejected"]),
                       max_seq_length) for e in examples]
    pad = tokenizer.pad_token_id
    chosen_scores = score(model, chosen, batch_size=batch_size, pad_id=pad)
    rejected_scores = score(model, rejected, batch_size=batch_size, pad_id=pad)
    count = min(max(generate_samples, 0), len(examples))
    generated = generate(model, tokenizer, chosen[:count], batch_size=batch_size,
                         max_len=max_seq_length) if count else []
    rows, right, margins = [], [], []
    for index, example in enumerate(examples):
        (c_sum, c_tokens, _), (r_sum, _, _) = chosen_scores[index], rejected_scores[index]
        c_logp, r_logp = -c_sum, -r_sum  # score() sums the cross-entropy
        correct = c_logp > r_logp
        right.append(correct)
        margins.append(c_logp - r_logp)
        rows.append({
            "index": index,
            "input": chosen[index].input_text,
            "expected_output": _answer_text(example["chosen"]),
            "rejected_output": _answer_text(example["rejected"]),
            "predicted_output": generated[index] if index < count else None,
            "chosen_logp": c_logp,
            "rejected_logp": r_logp,
            "loss": c_sum / c_tokens if c_tokens else None,
            "score": c_logp - r_logp,
            "correct": correct,
        })
    values = {
        "preference_accuracy": sum(right) / len(right) if right else math.nan,
        "logp_margin": metrics.mean(margins) if margins else math.nan,
        "chosen_loss": metrics.token_weighted_loss([s[0] for s in chosen_scores],
                                                   [s[1] for s in chosen_scores]),
        "rejected_loss": metrics.token_weighted_loss([s[0] for s in rejected_scores],
                                                     [s[1] for s in rejected_scores]),
        "generated_samples": count,
    }
    return rows, values, {"generated_samples": count}
