"""Text-generation evaluation on the tiny byte-level LM, checked against direct
computation with the same model (one example at a time, no padding)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tuneyard.evaluation import builtin_functions as builtins
from tuneyard.evaluation import evaluate_checkpoint

pytestmark = pytest.mark.slow  # real models, some trained here

EXAMPLES = [
    {"prompt": "Capital of France?", "completion": " Paris"},
    {"prompt": "2+2=", "completion": "4"},
    {"prompt": "Say something long please:", "completion": " a rather longer answer here"},
    {"prompt": "x", "completion": " y z"},
    {"prompt": "The quick brown fox", "completion": " jumps over the lazy dog"},
]


def _direct(model, prompt_ids: list[int], target_ids: list[int]) -> tuple[float, int, int]:
    """(loss sum, tokens, argmax-correct) for one unpadded sequence."""
    ids = torch.tensor([prompt_ids + target_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    start = len(prompt_ids)
    predicting = logits[start - 1:-1]
    targets = ids[0, start:]
    loss = F.cross_entropy(predicting, targets, reduction="sum").item()
    return loss, len(target_ids), int((predicting.argmax(-1) == targets).sum())


def _completion_ids(tokenizer, example):
    return (tokenizer(example["prompt"])["input_ids"],
            tokenizer(example["completion"], add_special_tokens=False)["input_ids"]
            + [tokenizer.eos_token_id])


@pytest.fixture(scope="module")
def lm(tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(tiny_lm).eval(),
            AutoTokenizer.from_pretrained(tiny_lm))


def test_prompt_completion_rows_and_metrics_match_direct_computation(tiny_lm, lm, home):
    model, tokenizer = lm
    result = evaluate_checkpoint(model_dir=str(tiny_lm), task_type="text-generation",
                                 examples=EXAMPLES, home=home, generate_samples=3, batch_size=2)
    rows, agg = result.rows, result.aggregated
    assert [r["index"] for r in rows] == list(range(len(EXAMPLES)))
    assert [r["input"] for r in rows] == [e["prompt"] for e in EXAMPLES]
    assert [r["expected_output"] for r in rows] == [e["completion"] for e in EXAMPLES]

    direct = [_direct(model, *_completion_ids(tokenizer, e)) for e in EXAMPLES]
    for row, (loss_sum, tokens, correct) in zip(rows, direct, strict=True):
        assert row["num_tokens"] == tokens
        assert row["loss"] == pytest.approx(loss_sum / tokens, rel=1e-4)
        assert row["token_accuracy"] == pytest.approx(correct / tokens)
    want_loss = sum(d[0] for d in direct) / sum(d[1] for d in direct)  # token-weighted
    assert float(agg["loss"]) == pytest.approx(want_loss, rel=1e-4)
    assert float(agg["perplexity"]) == pytest.approx(math.exp(float(agg["loss"])), rel=1e-5)
    assert float(agg["token_accuracy"]) == pytest.approx(
        sum(d[2] for d in direct) / sum(d[1] for d in direct), abs=1e-6)
    assert agg["num_examples"] == "5" and agg["generated_samples"] == "3"
    assert float(agg["eval_seconds"]) > 0

    # Greedy generation on the first 3 only; batched (left-padded) equals one at a time.
    assert all(r["predicted_output"] is None and r["correct"] is None for r in rows[3:])
    for row, example in zip(rows[:3], EXAMPLES[:3], strict=True):
        prompt_ids, target_ids = _completion_ids(tokenizer, example)
        out = model.generate(input_ids=torch.tensor([prompt_ids]), do_sample=False,
                             max_new_tokens=len(target_ids) + max(8, len(target_ids) // 4))
        assert row["predicted_output"] == tokenizer.decode(out[0, len(prompt_ids):],
                                                           skip_special_tokens=True)
        assert row["correct"] == (row["predicted_output"].strip() == example["completion"].strip())
    for name in ("exact_match", "rouge_l", "chrf"):
        fn = getattr(builtins, name)
        want = sum(fn(r["input"], r["expected_output"], r["predicted_output"])
                   for r in rows[:3]) / 3
        assert float(agg[name]) == pytest.approx(want, abs=1e-6)
    json.dumps(rows, allow_nan=False)  # strict JSON


def test_learned_completion_scores_exact_match(tmp_path, tiny_lm, home):
    """A model trained to answer gets exact_match 1 and a lower loss than its base."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    examples = [{"prompt": "Q:", "completion": " ok"}]
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    prompt_ids, target_ids = _completion_ids(tokenizer, examples[0])
    ids = torch.tensor([prompt_ids + target_ids])
    labels = torch.tensor([[-100] * len(prompt_ids) + target_ids])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    trained = tmp_path / "trained"
    model.save_pretrained(trained)
    tokenizer.save_pretrained(trained)

    base = evaluate_checkpoint(model_dir=str(tiny_lm), task_type="text-generation",
                               examples=examples, home=home, test_functions=["exact_match"])
    after = evaluate_checkpoint(model_dir=str(trained), task_type="text-generation",
                                examples=examples, home=home, test_functions=["exact_match"])
    assert after.rows[0]["predicted_output"] == " ok"
    assert after.aggregated["exact_match"] == "1" and base.aggregated["exact_match"] == "0"
    assert after.rows[0]["test_functions"] == {"exact_match": 1.0}
    assert "test_function:exact_match" not in after.aggregated  # same number, one key
    assert float(after.aggregated["loss"]) < float(base.aggregated["loss"])


def test_chat_scores_the_last_assistant_message(tiny_chat, home):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_chat).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "name?"},
        {"role": "assistant", "content": "tiny"},
        {"role": "user", "content": "ignored trailing turn"},
    ]
    result = evaluate_checkpoint(model_dir=str(tiny_chat), task_type="text-generation",
                                 examples=[{"messages": messages}], home=home)
    row = result.rows[0]
    assert row["expected_output"] == "tiny"
    assert row["input"] == "system: Be brief.\nuser: hi\nassistant: hello\nuser: name?"
    text = "<|bos|><|system|>Be brief.<|end|><|user|>hi<|end|><|assistant|>hello<|end|>" \
           "<|user|>name?<|end|><|assistant|>"
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer("tiny<|end|>", add_special_tokens=False)["input_ids"]
    loss_sum, tokens, _ = _direct(model, prompt_ids, target_ids)
    assert row["num_tokens"] == tokens == 5  # 4 bytes + <|end|>
    assert row["loss"] == pytest.approx(loss_sum / tokens, rel=1e-4)
    assert isinstance(row["predicted_output"], str)
    assert "<|end|>" not in row["predicted_output"]


def test_lora_checkpoint_equals_its_merged_model(tmp_path, tiny_lm, home):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm)
    # init_lora_weights=False: a non-zero update, so the adapter changes the outputs.
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                        target_modules=["q_proj", "v_proj"])
    with warnings.catch_warnings():
        # peft 0.21 asks transformers 5 for a deprecated attribute; not ours to fix.
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated",
                                FutureWarning)
        peft_model = get_peft_model(base, config)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    (adapter / "checkpoint.json").write_text(json.dumps({"base_model_path": str(tiny_lm)}))
    merged = tmp_path / "merged"
    peft_model.merge_and_unload().save_pretrained(merged)
    AutoTokenizer.from_pretrained(tiny_lm).save_pretrained(merged)

    kwargs = {"task_type": "text-generation", "examples": EXAMPLES[:3], "home": home,
              "generate_samples": 2}
    via_adapter = evaluate_checkpoint(model_dir=str(adapter), **kwargs)
    via_merged = evaluate_checkpoint(model_dir=str(merged), **kwargs)
    plain = evaluate_checkpoint(model_dir=str(tiny_lm), **kwargs)
    assert float(via_adapter.aggregated["loss"]) == pytest.approx(
        float(via_merged.aggregated["loss"]), rel=1e-4)
    assert [r["predicted_output"] for r in via_adapter.rows] == \
           [r["predicted_output"] for r in via_merged.rows]
    assert via_adapter.aggregated["loss"] != plain.aggregated["loss"]


def test_truncation_keeps_the_completion(tiny_lm, home):
    long_prompt = "p" * 300
    result = evaluate_checkpoint(model_dir=str(tiny_lm), task_type="text-generation",
                                 examples=[{"prompt": long_prompt, "completion": "abc"}],
                                 home=home, max_seq_length=32, generate_samples=0)
    assert result.rows[0]["num_tokens"] == 4  # a, b, c, EOS all scored
    assert result.aggregated["generated_samples"] == "0"
    assert result.aggregated["exact_match"] == "nan"


def test_bad_requests_are_value_errors(tiny_lm, home):
    with pytest.raises(ValueError, match="unknown task type 'summarize'"):
        evaluate_checkpoint(model_dir=str(tiny_lm), task_type="summarize", examples=EXAMPLES,
                            home=home)
    with pytest.raises(ValueError, match="test example 2 does not fit a text-generation task"):
        evaluate_checkpoint(model_dir=str(tiny_lm), task_type="text-generation",
                            examples=[EXAMPLES[0], {"text": "x"}], home=home)
    with pytest.raises(ValueError, match="no test examples"):
        evaluate_checkpoint(model_dir=str(tiny_lm), task_type="text-generation", examples=[],
                            home=Path(home))


def test_chat_template_whose_generation_prompt_is_not_a_prefix(tmp_path, tiny_chat, home):
    """Like templates that open an empty reasoning block only when generating: the
    reply is scored after the shared prefix, generation starts from the real prompt."""
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneyard.models.builtin import CHAT_TEMPLATE

    model_dir = tmp_path / "odd-template"
    shutil.copytree(tiny_chat, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = CHAT_TEMPLATE.replace(
        "{% if add_generation_prompt %}<|assistant|>{% endif %}",
        "{% if add_generation_prompt %}<|assistant|>think {% endif %}")
    tokenizer.save_pretrained(model_dir)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "tiny"}]
    result = evaluate_checkpoint(model_dir=str(model_dir), task_type="text-generation",
                                 examples=[{"messages": messages}], home=home)
    row = result.rows[0]
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    context = tokenizer("<|bos|><|user|>hi<|end|><|assistant|>",
                        add_special_tokens=False)["input_ids"]
    target = tokenizer("tiny<|end|>", add_special_tokens=False)["input_ids"]
    loss_sum, tokens, _ = _direct(model, context, target)
    assert row["num_tokens"] == tokens == 5
    assert row["loss"] == pytest.approx(loss_sum / tokens, rel=1e-4)
    prompt = context + tokenizer("think ", add_special_tokens=False)["input_ids"]
    out = model.generate(input_ids=torch.tensor([prompt]), do_sample=False, max_new_tokens=13)
    assert row["predicted_output"] == tokenizer.decode(out[0, len(prompt):],
                                                       skip_special_tokens=True)
