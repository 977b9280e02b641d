"""Classification (single- and multi-label) and regression: real training of
MiniLM (and the tiny LM with LoRA), label maps saved, eval loss reproducible."""

import pytest
import torch
import torch.nn.functional as F

from tuneyard.checkpoints.reader import list_published, verify_checkpoint
from tuneyard.training import JobSpec, TrainingError, resolve_parameters, run_job

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
]

PARAMS = {"num_train_epochs": 2, "learning_rate": 5e-4, "per_device_train_batch_size": 8,
          "logging_steps": 1, "max_seq_length": 32}


def _spec(model, task, train, evaluation, multi_label=False, labels=None, **params):
    return JobSpec(
        job_id="tr-seq", task_type=task, base_model="all-MiniLM-L6-v2-classifier",
        model_path=str(model), train_examples=train, eval_examples=evaluation,
        hyper_parameters=resolve_parameters({**PARAMS, **params}),
        labels=labels, multi_label=multi_label,
    )


def _logits(model, tokenizer, texts):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in texts])


def _check(summary, events, workdir, n_checkpoints):
    assert [n for n, _, _ in events.checkpoints] == list(range(1, n_checkpoints + 1))
    assert list_published(workdir / "checkpoints") == summary["checkpoints"]
    for _, path, _ in events.checkpoints:
        verify_checkpoint(path)
    final = events.checkpoints[-1][2]["eval_loss"]
    assert final < summary["initial_eval_loss"] - 0.02, (summary, final)
    return events.checkpoints[-1]


def test_single_label_classification(tmp_path, minilm, sentiment, events):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = [{"text": t, "labels": ["pos" if p else "neg"]} for t, p in sentiment]
    summary = run_job(_spec(minilm, "classification", data, data[::3]), workdir=tmp_path,
                      events=events)
    _, path, manifest = _check(summary, events, tmp_path, 2)
    assert manifest["labels"] == ["neg", "pos"] and manifest["multi_label"] is False
    model = AutoModelForSequenceClassification.from_pretrained(path)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert model.config.label2id == {"neg": 0, "pos": 1}
    assert model.config.problem_type == "single_label_classification"
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = [e["text"] for e in data[::3]]
    targets = torch.tensor([model.config.label2id[e["labels"][0]] for e in data[::3]])
    loss = F.cross_entropy(_logits(model, tokenizer, texts), targets).item()
    assert loss == pytest.approx(manifest["eval_loss"], abs=1e-4)


def test_multi_label_classification(tmp_path, minilm, sentiment, events):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = [{"text": t, "labels": ["pos" if p else "neg"] + (["film"] if "film" in t else [])}
            for t, p in sentiment]
    summary = run_job(_spec(minilm, "classification", data, data[::2], multi_label=True),
                      workdir=tmp_path, events=events)
    _, path, manifest = _check(summary, events, tmp_path, 2)
    assert manifest["labels"] == ["film", "neg", "pos"] and manifest["multi_label"] is True
    model = AutoModelForSequenceClassification.from_pretrained(path)
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.id2label == {0: "film", 1: "neg", 2: "pos"}
    tokenizer = AutoTokenizer.from_pretrained(path)
    targets = torch.tensor([[float(n in e["labels"]) for n in ("film", "neg", "pos")]
                            for e in data[::2]])
    logits = _logits(model, tokenizer, [e["text"] for e in data[::2]])
    loss = F.binary_cross_entropy_with_logits(logits, targets).item()
    assert loss == pytest.approx(manifest["eval_loss"], abs=1e-4)


def test_regression(tmp_path, minilm, sentiment, events):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = [{"text": t, "value": 1.0 if p else -1.0} for t, p in sentiment]
    summary = run_job(_spec(minilm, "regression", data, data[::3], num_train_epochs=2,
                            per_device_train_batch_size=4, learning_rate=1e-4),
                      workdir=tmp_path, events=events)
    _, path, manifest = _check(summary, events, tmp_path, 2)
    assert manifest["labels"] is None and manifest["task_type"] == "regression"
    model = AutoModelForSequenceClassification.from_pretrained(path)
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    tokenizer = AutoTokenizer.from_pretrained(path)
    predicted = _logits(model, tokenizer, [e["text"] for e in data[::3]]).squeeze(-1)
    loss = F.mse_loss(predicted, torch.tensor([e["value"] for e in data[::3]])).item()
    assert loss == pytest.approx(manifest["eval_loss"], abs=1e-4)


def test_tiny_lm_classifier_with_lora(tmp_path, tiny_lm, sentiment, events):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data = [{"text": t, "labels": ["pos" if p else "neg"]} for t, p in sentiment]
    spec = _spec(tiny_lm, "classification", data, data[::2], use_lora=True,
                 learning_rate=0.02, num_train_epochs=4)
    summary = run_job(spec, workdir=tmp_path, events=events)
    _, path, manifest = _check(summary, events, tmp_path, 4)
    assert manifest["is_lora"] is True and "model.safetensors" not in manifest["files"]
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_lm, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    model = PeftModel.from_pretrained(base, path)  # restores the adapter and the trained head
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = [e["text"] for e in data[::2]]
    targets = torch.tensor([int(e["labels"] == ["pos"]) for e in data[::2]])
    loss = F.cross_entropy(_logits(model, tokenizer, texts), targets).item()
    assert loss == pytest.approx(manifest["eval_loss"], abs=1e-4)


def test_label_problems_are_clear(tmp_path, tiny_lm, events):
    from tuneyard.training.recipes.sequence import choose_labels

    two = [{"text": "a", "labels": ["x", "y"]}]
    with pytest.raises(TrainingError, match="exactly one label per example"):
        run_job(_spec(tiny_lm, "classification", two, []), workdir=tmp_path, events=events)
    data = [{"text": "a", "labels": ["x"]}, {"text": "b", "labels": ["y"]}]
    with pytest.raises(TrainingError, match="label 'z' is not one of the job's labels"):
        run_job(_spec(tiny_lm, "classification", data, [{"text": "c", "labels": ["z"]}]),
                workdir=tmp_path, events=events)
    # Continuing from a checkpoint keeps its label order and refuses other labels.
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint.json").write_text('{"labels": ["y", "x"]}')
    assert choose_labels(_spec(tmp_path / "ckpt", "classification", data, [])) == ["y", "x"]
    with pytest.raises(TrainingError, match="trained on labels"):
        choose_labels(_spec(tmp_path / "ckpt", "classification", data, [], labels=["x", "w"]))
    assert events.checkpoints == []
