"""Text-generation evaluation: per-token loss over every example, greedy generation
on the first few.

What is scored is what training teaches (tuneyard.training.features):
- `{prompt, completion}`: the completion tokens plus EOS, after the prompt
  tokenized with the tokenizer's own special tokens (BOS);
- `{messages}`: the LAST assistant message (its content and the template's
  closing tokens) given the conversation before it rendered with the chat
  template and the generation prompt; later messages are ignored. (For a
  template whose generation prompt is not a prefix of the finished
  conversation, the rendered text is split where the reply's content starts.)
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
    """The context the target is scored after."""
    target_ids: list[int]
    input_text: str
    expected_text: str
    generation_prompt_ids: list[int] | None = None
    """What generation starts from, when it differs from `prompt_ids`."""


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


def _split_chat(tokenizer, messages: list[dict], generation_prompt: list[int]):
    """(context ids, target ids) of a conversation ending in the assistant turn."""
    full = _template_ids(tokenizer, messages)
    if full[:len(generation_prompt)] == generation_prompt:
        return generation_prompt, full[len(generation_prompt):]
    # The template renders the generation prompt differently from the same point
    # of a finished conversation (e.g. an empty reasoning block only while
    # generating). Split the rendered text where the reply's content starts.
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    content = messages[-1].get("content") or ""
    at = text.rfind(content) if content else -1
    if at >= 0:
        return (_ids(tokenizer(text[:at], add_special_tokens=False)),
                _ids(tokenizer(text[at:], add_special_tokens=False)))
    shared = 0  # the content was rewritten too: what follows the shared tokens
    while shared < min(len(full), len(generation_prompt)) and \
            full[shared] == generation_prompt[shared]:
        shared += 1
    return full[:shared], full[shared:]


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
        generation_prompt = _template_ids(tokenizer, messages[:last], add_generation_prompt=True)
        prompt, target = _split_chat(tokenizer, messages[:last + 1], generation_prompt)
        input_text, expected = transcript(messages[:last]), messages[last]["content"]
    else:
        prompt = _ids(tokenizer(example["prompt"]))
        target = _ids(tokenizer(example["completion"], add_special_tokens=False))
        if tokenizer.eos_token_id is not None:
            target.append(tokenizer.eos_token_id)
        input_text, expected = example["prompt"], example["completion"]
        generation_prompt = None
    kept_prompt, target = _truncate(prompt, target, max_len)
    if generation_prompt is not None and generation_prompt != prompt:
        # Cut by as many tokens as the scored context lost.
        cut = len(prompt) - len(kept_prompt)
        generation_prompt = generation_prompt[cut:]
    else:
        generation_prompt = None
    return Encoded(kept_prompt, target, input_text, expected, generation_prompt)


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
        chosen = target[:, 1:].to(device)
        # Only the target positions, upcast: [tokens, vocab] rather than the whole
        # padded batch in fp32 (a large vocabulary makes that gigabytes).
        predicting = logits[:, :-1][chosen].float()
        labels = ids[:, 1:].to(device)[chosen]
        losses = F.cross_entropy(predicting, labels, reduction="none").cpu()
        correct = (predicting.argmax(-1) == labels).cpu()
        counts = chosen.sum(dim=1).tolist()
        offset = 0
        for row, i in enumerate(batch):
            n = counts[row]  # boolean indexing is row-major: each row's tokens are contiguous
            results[i] = (float(losses[offset:offset + n].sum()), n,
                          int(correct[offset:offset + n].sum()))
            offset += n
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
    prompts_of = [item.generation_prompt_ids or item.prompt_ids or [pad_id] for item in items]
    order = sorted(range(len(items)), key=lambda i: len(prompts_of[i]))
    for batch in _batches(order, batch_size):
        prompts = [prompts_of[i] for i in batch]
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
