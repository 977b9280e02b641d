"""Text generation on the tiny LM: real training, checkpoints that reload and
whose recorded eval loss is what the published files give."""

import pytest
import torch

from tuneyard.checkpoints.reader import list_published, read_manifest, verify_checkpoint
from tuneyard.training import TrainingError, run_job

pytestmark = [
    pytest.mark.slow,
    # peft asks the model the deprecated question; not ours to fix.
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
]

FULL = {"num_train_epochs": 4, "learning_rate": 0.003, "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 3,  # several padded eval batches
        "logging_steps": 1}
LORA = {**FULL, "use_lora": True, "learning_rate": 0.02, "lora_r": 8, "lora_alpha": 16}


def recompute_loss(model, tokenizer, examples) -> float:
    """Token-weighted CE over completion+EOS tokens, one example at a time."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for ex in examples:
            prompt = tokenizer(ex["prompt"])["input_ids"]
            target = tokenizer(ex["completion"], add_special_tokens=False)["input_ids"]
            target = target + [tokenizer.eos_token_id]
            logits = model(torch.tensor([prompt + target])).logits[0]
            logp = torch.log_softmax(logits[len(prompt) - 1:-1].float(), dim=-1)
            total -= logp[torch.arange(len(target)), torch.tensor(target)].sum().item()
            count += len(target)
    return total / count


def _check_run(summary, events, workdir, expected_numbers):
    root = workdir / "checkpoints"
    assert [n for n, _, _ in events.checkpoints] == expected_numbers
    assert list_published(root) == expected_numbers
    assert summary["checkpoints"] == expected_numbers
    assert not (workdir / "trainer").exists()  # the Trainer's own folders are gone
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []
    assert events.percents == sorted(set(events.percents)) and events.percents[-1] == 100
    steps = [s for s, _ in events.losses]
    assert steps == sorted(steps) and steps[-1] == summary["steps"]
    first, last = events.losses[0][1], events.losses[-1][1]
    assert last < first * 0.8, events.losses
    evals = [m["eval_loss"] for _, _, m in events.checkpoints]
    assert evals[-1] < evals[0] and evals[-1] < summary["initial_eval_loss"]
    for number, path, manifest in events.checkpoints:
        assert path == root / f"{number:06d}"
        assert verify_checkpoint(path)["number"] == number
        assert read_manifest(path) == manifest
        assert {"state/optimizer.pt", "state/scheduler.pt", "state/trainer_state.json",
                "state/rng_state.pth"} <= set(manifest["files"])
        assert "training_args.bin" not in manifest["files"]
        assert manifest["task_type"] == "text-generation"
        assert manifest["base_model"] == "tuneyard-tiny-lm"
        assert manifest["hyper_parameters"]["num_train_epochs"] == 4


def test_full_fine_tune(tmp_path, tiny_lm, letter_data, job, events):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train, evaluation = letter_data
    summary = run_job(job(tiny_lm, train, evaluation, **FULL), workdir=tmp_path, events=events)
    assert summary["steps"] == summary["max_steps"] == 12  # 24 examples / 8 x 4 epochs
    assert summary["stopped"] is False and summary["stop_reason"] is None
    _check_run(summary, events, tmp_path, [1, 2, 3, 4])
    assert [m["step"] for _, _, m in events.checkpoints] == [3, 6, 9, 12]
    assert [m["epoch"] for _, _, m in events.checkpoints] == [1.0, 2.0, 3.0, 4.0]
    for _, path, manifest in events.checkpoints:
        assert manifest["is_lora"] is False and "model.safetensors" in manifest["files"]
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        assert recompute_loss(model, tokenizer, evaluation) == pytest.approx(
            manifest["eval_loss"], abs=1e-4)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm)
    assert recompute_loss(base, tokenizer, evaluation) == pytest.approx(
        summary["initial_eval_loss"], abs=1e-4)


def test_lora_fine_tune_and_archive(tmp_path, tiny_lm, letter_data, job, events):
    import tarfile

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneyard.checkpoints.writer import build_model_archive

    train, evaluation = letter_data
    summary = run_job(job(tiny_lm, train, evaluation, **LORA), workdir=tmp_path, events=events)
    _check_run(summary, events, tmp_path, [1, 2, 3, 4])
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    for _, path, manifest in events.checkpoints:
        assert manifest["is_lora"] is True and manifest["base_model_path"] == str(tiny_lm)
        assert "adapter_model.safetensors" in manifest["files"]
        assert "model.safetensors" not in manifest["files"]  # the base weights stay out
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm), path)
        assert recompute_loss(model, tokenizer, evaluation) == pytest.approx(
            manifest["eval_loss"], abs=1e-4)

    _, last, manifest = events.checkpoints[-1]
    build_model_archive(last, tmp_path / "model.tar")
    with tarfile.open(tmp_path / "model.tar") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    assert not (tmp_path / "x" / "state").exists()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm), tmp_path / "x")
    assert recompute_loss(model, tokenizer, evaluation) == pytest.approx(
        manifest["eval_loss"], abs=1e-4)


def test_completion_labels_cover_only_the_completion(tiny_lm):
    from transformers import AutoTokenizer

    from tuneyard.training.features import IGNORE, completion_features

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    item = completion_features(tok, "ab", "cd", max_len=64)
    # <bos> a b | c d <eos>
    assert item["input_ids"] == tok("ab")["input_ids"] + tok(
        "cd", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert item["labels"][:3] == [IGNORE] * 3
    assert tok.decode(item["labels"][3:]) == "cd<|eos|>"
    # Too long: the prompt is cut from the left, the completion kept.
    item = completion_features(tok, "x" * 100, "cd", max_len=16)
    assert len(item["input_ids"]) == 16 and tok.decode(item["labels"][-3:]) == "cd<|eos|>"


def test_chat_labels_are_the_assistant_turns_only(tiny_chat):
    from transformers import AutoTokenizer

    from tuneyard.training.features import IGNORE, assistant_mask, chat_features

    tok = AutoTokenizer.from_pretrained(tiny_chat)
    messages = [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "ok"},
    ]
    item = chat_features(tok, messages, max_len=128)
    learned = [t for t in item["labels"] if t != IGNORE]
    assert tok.decode(learned) == "yo<|end|>ok<|end|>"
    masked = [t for t, lab in zip(item["input_ids"], item["labels"], strict=True) if lab == IGNORE]
    assert tok.decode(masked) == (
        "<|bos|><|system|>terse<|end|><|user|>hi<|end|><|assistant|><|user|>bye<|end|><|assistant|>")
    # A template without {% generation %} markers gets the same mask by prefix rendering.
    tok.chat_template = tok.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", "")
    ids, mask = assistant_mask(tok, messages)
    assert ids == item["input_ids"]
    assert [t if m else IGNORE for t, m in zip(ids, mask, strict=True)] == item["labels"]


def test_chat_training_runs(tmp_path, tiny_chat, job, events):
    chats = [
        {"messages": [{"role": "user", "content": f"say {w}"},
                      {"role": "assistant", "content": w}]}
        for w in ("red", "green", "blue", "cyan")
    ] * 4
    summary = run_job(
        job(tiny_chat, chats, chats[:4], num_train_epochs=3, learning_rate=0.003,
            logging_steps=1, per_device_train_batch_size=4),
        workdir=tmp_path, events=events,
    )
    assert summary["steps"] == 12 and len(events.checkpoints) == 3
    assert events.checkpoints[-1][2]["eval_loss"] < summary["initial_eval_loss"]


def test_save_steps_with_a_final_checkpoint_and_no_duplicate(
    tmp_path, tiny_lm, letter_data, job, make_events
):
    RecordingEvents = make_events
    train, evaluation = letter_data
    params = {**FULL, "save_strategy": "steps", "save_steps": 5, "max_steps": 12}
    events = RecordingEvents()
    run_job(job(tiny_lm, train, evaluation, **params), workdir=tmp_path / "a", events=events)
    assert [m["step"] for _, _, m in events.checkpoints] == [5, 10, 12]
    events = RecordingEvents()
    params["save_steps"] = 6
    run_job(job(tiny_lm, train, evaluation, **params), workdir=tmp_path / "b", events=events)
    assert [m["step"] for _, _, m in events.checkpoints] == [6, 12]
    assert [n for n, _, _ in events.checkpoints] == [1, 2]


def test_epoch_strategy_with_max_steps_mid_epoch(tmp_path, tiny_lm, letter_data, job, events):
    train, evaluation = letter_data
    run_job(job(tiny_lm, train, evaluation, **{**FULL, "max_steps": 7}),
            workdir=tmp_path, events=events)
    assert [m["step"] for _, _, m in events.checkpoints] == [3, 6, 7]


def test_clear_failures(tmp_path, tiny_lm, letter_data, job, events, monkeypatch):
    train, evaluation = letter_data
    with pytest.raises(TrainingError, match="training set is empty"):
        run_job(job(tiny_lm, [], evaluation, **FULL), workdir=tmp_path, events=events)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TrainingError) as info:
        run_job(job("nobody/not-cached-model", train, evaluation, **FULL),
                workdir=tmp_path, events=events)
    assert str(info.value) == (
        "model 'tuneyard-tiny-lm' cannot be loaded offline: not in the local Hugging Face cache")
    with pytest.raises(TrainingError, match="unknown task type"):
        run_job(job(tiny_lm, train, evaluation, task_type="painting"), workdir=tmp_path,
                events=events)
    no_assistant = [{"messages": [{"role": "user", "content": "hi"}]}]
    with pytest.raises(TrainingError, match="no training example has a completion"):
        run_job(job(tiny_lm, no_assistant, []), workdir=tmp_path, events=events)
    with pytest.raises(TrainingError, match="does not exist"):
        run_job(job(tmp_path / "gone", train, evaluation), workdir=tmp_path, events=events)
    with pytest.raises(TrainingError, match="invalid hyper-parameters: unknown parameter 'lr'"):
        spec = job(tiny_lm, train, evaluation)
        spec.hyper_parameters["lr"] = 1
        run_job(spec, workdir=tmp_path, events=events)
    assert events.checkpoints == []
