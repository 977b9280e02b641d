"""Text-generation evaluation: per-token loss over every example, greedy generation
on the first few.

What is scored is what training teaches (tuneyard.training.features):
- `{prompt, completion}`: the completion tokens plus EOS, after the prompt
  tokenized with the tokenizer's own special tokens (BOS);
- `{messages}`: the LAST assistant message (its content and the template's
  closing tokens) given the conversation before it rendered with the chat
  template and the generation prompt; later messages are ignored.
Too long: the prompt loses its beginning, keeping at least half the window
for the target, as training truncates.

Loss is the token-weighted mean cross-entropy (perplexity = exp of it);
token accuracy counts target tokens equal to the previous position's argmax.
Generation is greedy, batched with left padding, `max_new_tokens` = target
length + max(8, 25%), decoded without special tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tuneyard.evaluation import metrics
from tuneyard.evaluation.builtin_functions import chrf, exact_match, rouge_l


@dataclass
class Encoded:
    prompt_ids: list[int]
    target_ids: list[int]
    input_text: str
    expected_text: str


def _ids(encoded) -> list[int]:
    return list(encoded["input_ids"] if not isinstance(encoded, list) else encoded)


def _template_ids(tokenizer, messages, **kwargs) -> list[int]:
    return _ids(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs))


def transcript(messages: list[dict]) -> str:
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)


def _truncate(prompt: list[int], target: list[int], max_len: int) -> tuple[list[int], list[int]]:
    if len(prompt) + len(target) <= max_len:
        return prompt, target
    keep_target = min(len(target), max(max_len - len(prompt), max_len // 2))
    keep_prompt = max_len - keep_target
    return (prompt[len(prompt) - keep_prompt:] if keep_prompt else []), target[:keep_target]


def encode(tokenizer, example: dict, max_len: int) -> Encoded:
    if "messages" in example:
        messages = example["messages"]
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"),
                   default=None)
        if last is None:
            raise ValueError("a chat example has no assistant message to evaluate")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the model's tokenizer has no chat template, so chat (messages) "
                             "examples cannot be evaluated")
        prompt = _template_ids(tokenizer, messages[:last], add_generation_prompt=True)
        full = _template_ids(tokenizer, messages[:last + 1])
        if full[:len(prompt)] != prompt:
            raise ValueError("the chat template does not render a conversation as its "
                             "prefix plus the next message; cannot isolate the assistant turn")
        target = full[len(prompt):]
        input_text, expected = transcript(messages[:last]), messages[last]["content"]
    else:
        prompt = _ids(tokenizer(example["prompt"]))
        target = _ids(tokenizer(example["completion"], add_special_tokens=False))
        if tokenizer.eos_token_id is not None:
            target.append(tokenizer.eos_token_id)
        input_text, expected = example["prompt"], example["completion"]
    prompt, target = _truncate(prompt, target, max_len)
    return Encoded(prompt, target, input_text, expected)


def _batches(order: list[int], size: int):
    for start in range(0, len(order), size):
        yield order[start:start + size]


@torch.no_grad()
def score(model, items: list[Encoded], *, batch_size: int, pad_id: int) -> list[tuple]:
    """Per item: (loss sum, target tokens, argmax-correct tokens), computed in fp32."""
    device = next(model.parameters()).device
    results: list[tuple] = [None] * len(items)
    # Similar lengths together: less padding, same results (padding is masked).
    order = sorted(range(len(items)),
                   key=lambda i: len(items[i].prompt_ids) + len(items[i].target_ids))
    for batch in _batches(order, batch_size):
        seqs = [items[i].prompt_ids + items[i].target_ids for i in batch]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        target = torch.zeros((len(batch), width), dtype=torch.bool)
        for row, (i, seq) in enumerate(zip(batch, seqs, strict=True)):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
            # The first token has no prediction; a target at position 0 (empty prompt) is skipped.
            target[row, max(1, len(items[i].prompt_ids)):len(seq)] = True
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        predicted_from = logits[:, :-1].float()
        labels = ids[:, 1:].to(device)
        chosen = target[:, 1:].to(device)
        losses = F.cross_entropy(predicted_from.transpose(1, 2), labels, reduction="none")
        correct = predicted_from.argmax(-1) == labels
        for row, i in enumerate(batch):
            keep = chosen[row]
            results[i] = (float(losses[row][keep].sum()), int(keep.sum()),
                          int(correct[row][keep].sum()))
    return results


def _stop_ids(model, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    stop = list(configured) if isinstance(configured, list) else [configured]
    return [t for t in dict.fromkeys([*stop, tokenizer.eos_token_id]) if t is not None]


def _new_tokens(target_length: int) -> int:
    return target_length + max(8, target_length // 4)


@torch.no_grad()
def generate(model, tokenizer, items: list[Encoded], *, batch_size: int, max_len: int) -> list[str]:
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    limit = getattr(model.config, "max_position_embeddings", None) or 10**9
    texts: list[str] = [""] * len(items)
    order = sorted(range(len(items)), key=lambda i: len(items[i].prompt_ids))
    for batch in _batches(order, batch_size):
        prompts = [items[i].prompt_ids or [pad_id] for i in batch]
        width = max(len(p) for p in prompts)
        wanted = max(_new_tokens(len(items[i].target_ids)) for i in batch)
        new_tokens = max(1, min(wanted, limit - width, max_len))
        # Left padding: every prompt ends where generation starts.
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        # A fresh config: greedy, whatever sampling defaults the model ships.
        config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False,
                                  eos_token_id=_stop_ids(model, tokenizer), pad_token_id=pad_id)
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        for row, i in enumerate(batch):
            # The batch ran for its longest bound; each text keeps only its own, so
            # a prediction never depends on which examples shared its batch.
            own = _new_tokens(len(items[i].target_ids))
            texts[i] = tokenizer.decode(out[row, width:width + own], skip_special_tokens=True)
    return texts


def evaluate_text_generation(*, model, tokenizer, examples: list[dict], generate_samples: int,
                             max_seq_length: int, batch_size: int) -> tuple[list[dict], dict, dict]:
    """(rows, metrics as floats, details)."""
    items = [encode(tokenizer, example, max_seq_length) for example in examples]
    scored = score(model, items, batch_size=batch_size, pad_id=tokenizer.pad_token_id)
    count = min(max(generate_samples, 0), len(items))
    generated = generate(model, tokenizer, items[:count], batch_size=batch_size,
                         max_len=max_seq_length) if count else []
    rows, sample_scores = [], {"exact_match": [], "rouge_l": [], "chrf": []}
    for index, (item, (loss_sum, tokens, correct)) in enumerate(zip(items, scored, strict=True)):
        predicted = generated[index] if index < count else None
        row = {
            "index": index,
            "input": item.input_text,
            "expected_output": item.expected_text,
            "predicted_output": predicted,
            "loss": loss_sum / tokens if tokens else None,
            "score": None,
            "correct": None,
            "num_tokens": tokens,
            "token_accuracy": correct / tokens if tokens else None,
        }
        if predicted is not None:
            for name, fn in (("exact_match", exact_match), ("rouge_l", rouge_l), ("chrf", chrf)):
                sample_scores[name].append(fn(item.input_text, item.expected_text, predicted))
            row["correct"] = bool(sample_scores["exact_match"][-1])
        rows.append(row)
    loss = metrics.token_weighted_loss([s[0] for s in scored], [s[1] for s in scored])
    values = {
        "loss": loss,
        "perplexity": metrics.perplexity(loss),
        "token_accuracy": metrics.token_accuracy([s[2] for s in scored], [s[1] for s in scored]),
        **{name: metrics.mean(v) if v else math.nan for name, v in sample_scores.items()},
        "generated_samples": count,
    }
    return rows, values, {"generated_samples": count}
