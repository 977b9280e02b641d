"""Typed training hyperparameters and their validation.

Pure Python on purpose: the API server validates job requests with
`resolve_parameters` and must not pay for importing torch. The names follow
Hugging Face `TrainingArguments` (as the Emissary contract documents them);
the rest are tuneyard's own. Each field's attribute docstring is its help
text (`FIELD_HELP`), shown by the API's errors and the CLI's `--help`.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
from dataclasses import asdict, dataclass, field, fields
from typing import Any

LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
# Optimizers that need nothing beyond torch (no bitsandbytes, galore, ...).
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop")
SAVE_STRATEGIES = ("epoch", "steps")

# Upper bounds: far beyond any sensible job, low enough that an absurd value is refused
# at the API instead of failing (or running forever) in the worker.
MAX_EPOCHS = 1000
MAX_STEPS = 10_000_000
MAX_BATCH = 4096
MAX_TIMEOUT = 30 * 24 * 3600
MAX_STR = 200
MAX_WORKERS = 512  # data-parallel Ray Train workers of one job


def _p(default: Any, *, gt: float | None = None, ge: float | None = None,
       le: float | None = None, lt: float | None = None,
       choices: tuple[str, ...] | None = None, also: tuple = ()) -> Any:
    """A field with its range; `also` lists extra allowed values (e.g. -1 = unset)."""
    rules = {"gt": gt, "ge": ge, "le": le, "lt": lt, "choices": choices, "also": also}
    return field(default=default, metadata={k: v for k, v in rules.items() if v not in (None, ())})


@dataclass
class TrainingParameters:
    num_train_epochs: float = _p(3.0, gt=0, le=MAX_EPOCHS)
    """Passes over the training set (may be fractional); ignored when max_steps is set."""
    max_steps: int = _p(-1, ge=1, le=MAX_STEPS, also=(-1,))
    """Total optimizer steps; overrides num_train_epochs. -1 means unset."""
    learning_rate: float = _p(5e-5, gt=0, le=10)
    """Peak learning rate of the optimizer."""
    per_device_train_batch_size: int = _p(8, ge=1, le=MAX_BATCH)
    """Training examples per batch on each device."""
    per_device_eval_batch_size: int = _p(8, ge=1, le=MAX_BATCH)
    """Evaluation examples per batch on each device."""
    gradient_accumulation_steps: int = _p(1, ge=1, le=MAX_BATCH)
    """Batches whose gradients are summed before one optimizer step."""
    weight_decay: float = _p(0.0, ge=0, le=10)
    """Decoupled weight decay applied by the optimizer."""
    warmup_steps: int = _p(0, ge=0, le=MAX_STEPS)
    """Steps of linear learning-rate warmup; takes precedence over warmup_ratio."""
    warmup_ratio: float = _p(0.0, ge=0, lt=1)
    """Fraction of the total steps used for warmup when warmup_steps is 0."""
    lr_scheduler_type: str = _p("linear", choices=LR_SCHEDULERS)
    """How the learning rate changes over training."""
    optim: str = _p("adamw_torch_fused", choices=OPTIMIZERS)
    """The optimizer (transformers' default: fused AdamW, several times faster on CPU too)."""
    logging_steps: int = _p(10, ge=1, le=MAX_STEPS)
    """Report the training loss every this many optimizer steps."""
    seed: int = _p(42, ge=0, lt=2**32)
    """Random seed for initialisation, shuffling and dropout (fits the RNGs: below 2**32)."""
    downsample_size: int = _p(100, ge=1, le=100)
    """Percent of the training set used (1-100); a seeded random subset."""
    use_lora: bool = False
    """Train a LoRA adapter instead of all weights."""
    lora_r: int = _p(8, ge=1, le=1024)
    """LoRA rank."""
    lora_alpha: int = _p(16, ge=1, le=16384)
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)."""
    lora_dropout: float = _p(0.05, ge=0, lt=1)
    """Dropout on the LoRA branch."""
    max_seq_length: int = _p(512, ge=8, le=131072)
    """Longer examples are truncated to this many tokens."""
    save_strategy: str = _p("epoch", choices=SAVE_STRATEGIES)
    """When to write a checkpoint: at each epoch end, or every save_steps steps."""
    save_steps: int = _p(500, ge=1, le=MAX_STEPS)
    """Steps between checkpoints when save_strategy is 'steps'."""
    keep_checkpoints: int = _p(0, ge=0, le=10000)
    """Keep the weights of this many best checkpoints (by metric_for_best_model)
    plus the latest; 0 keeps all."""
    timeout_seconds: int = _p(0, ge=0, le=MAX_TIMEOUT)
    """Wall-clock limit for the whole job (at most 30 days); 0 means none. A job
    that sets none gets the server's `TUNEYARD_DEFAULT_TIMEOUT_SECONDS`."""
    metric_for_best_model: str = "loss"
    """Evaluation metric that decides the best checkpoint and early stopping."""
    greater_is_better: bool | None = None
    """Whether a larger metric_for_best_model is better; unset means 'not for losses'."""
    early_stopping_patience: int = _p(0, ge=0, le=10000)
    """Stop after this many checkpoints without improvement; 0 turns it off."""
    eval_generate_samples: int = _p(32, ge=0, le=10000)
    """Test examples whose generations are scored (text generation evaluation)."""
    beta: float = _p(0.1, ge=0, le=100)
    """DPO and GRPO: how strongly the model is held to the model it started from (DPO's
    preference temperature; GRPO's KL penalty, 0 loads no reference model)."""
    num_generations: int = _p(4, ge=2, le=256)
    """GRPO: completions sampled per prompt, scored against each other. The batch
    (per_device_train_batch_size x gradient_accumulation_steps) must be a multiple of it."""
    max_completion_length: int = _p(64, ge=1, le=131072)
    """GRPO: the most tokens generated per completion."""
    temperature: float = _p(1.0, gt=0, le=10)
    """GRPO: sampling temperature of the generated completions."""
    num_workers: int = _p(1, ge=1, le=MAX_WORKERS)
    """Data-parallel training workers (DDP) on the Ray cluster (`TUNEYARD_RAY_ADDRESS`);
    above 1 needs one. per_device_train_batch_size stays per worker: the global batch
    is num_workers x per_device_train_batch_size x gradient_accumulation_steps."""


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the string literal written right below it in the class body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (e.g. a zipped install): no help text
        return {}
    body = ast.parse(source).body[0].body
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


FIELD_HELP: dict[str, str] = _attribute_docstrings(TrainingParameters)
_FIELDS = {f.name: f for f in fields(TrainingParameters)}
ALLOWED = tuple(sorted(_FIELDS))


class ParameterError(ValueError):
    """Some hyperparameters were unknown or invalid; `problems` lists each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def defaults() -> dict[str, Any]:
    return asdict(TrainingParameters())


def _kind(name: str) -> str:
    ann = _FIELDS[name].type  # a string under `from __future__ import annotations`
    return {"float": "float", "int": "int", "bool": "bool", "str": "str",
            "bool | None": "optional_bool"}[ann]


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _convert(name: str, value: Any) -> Any:
    """Coerce one value (the contract allows strings for numbers); raise ValueError."""
    kind = _kind(name)
    if kind == "optional_bool":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null")):
            return None
        kind = "bool"
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError("must be true or false")
    if kind == "str":
        if isinstance(value, str) and len(value) <= MAX_STR:
            return value.strip()
        raise ValueError("must be a string")
    if isinstance(value, bool):  # bool is an int subclass; True is not a learning rate
        raise ValueError("must be a number")
    if isinstance(value, str):
        if len(value) > 100:  # no number worth reading is this long
            raise ValueError("must be a number")
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if isinstance(value, int):  # exact, of any size: the range check refuses huge ones
        return value if kind == "int" else _finite(value)
    if not isinstance(value, float) or not math.isfinite(value):
        raise ValueError("must be a number")  # NaN, Infinity, anything else
    if kind == "int":
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _finite(value: int) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a float (10**400)
        raise ValueError("must be a number") from None


def _shown(value: Any) -> str:
    """`repr` of a value for an error message, kept short (and safe for huge ints,
    whose repr may raise past Python's digit limit)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _range_text(meta: dict) -> str:
    parts = []
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in meta:
            parts.append(f"{sym} {_bound(meta[key])}")
    text = " and ".join(parts)
    if "also" in meta:
        text = f"{text} (or {', '.join(str(a) for a in meta['also'])})"
    return text


def _check(name: str, value: Any, given: Any) -> str | None:
    """Problem text for an out-of-range `value` (converted from `given`), or None."""
    meta = _FIELDS[name].metadata
    if "choices" in meta:
        if value not in meta["choices"]:
            return f"{name} must be one of {', '.join(meta['choices'])}, got {_shown(given)}"
        return None
    if value in meta.get("also", ()):
        return None
    bad = (
        ("gt" in meta and not value > meta["gt"])
        or ("ge" in meta and not value >= meta["ge"])
        or ("lt" in meta and not value < meta["lt"])
        or ("le" in meta and not value <= meta["le"])
    )
    if bad:
        noun = "a whole number" if _kind(name) == "int" else "a number"
        return f"{name} must be {noun} {_range_text(meta)}, got {_shown(given)}"
    return None


def _describe(name: str) -> str:
    kind = _kind(name)
    meta = _FIELDS[name].metadata
    if kind in ("bool", "optional_bool"):
        return "true or false"
    if kind == "str":
        return ("one of " + ", ".join(meta["choices"]) if "choices" in meta
                else f"a string of at most {MAX_STR} characters")
    noun = "a whole number" if kind == "int" else "a number"
    rng = _range_text(meta)
    return f"{noun} {rng}" if rng else noun


MAX_GIVEN = 100
"""More keys than this in one parameters object is refused without listing each; a
few unknown ones beside the real ones are each named."""


def resolve_parameters(raw: dict | None, *, template: dict | None = None) -> dict[str, Any]:
    """Defaults, then the base model's template, then the user's values.

    Returns every parameter as plain JSON-able values (the job's
    `hyper_parameters`). Raises `ParameterError` listing every problem.
    """
    problems: list[str] = []
    resolved = defaults()
    for source, values in (("template", template or {}), ("request", raw or {})):
        if not isinstance(values, dict):
            raise ParameterError([f"hyper-parameters ({source}) must be an object"])
        if len(values) > MAX_GIVEN:
            # Refused whole, before each key is looked at and listed in the error.
            raise ParameterError([f"hyper-parameters ({source}): {len(values)} given, but there "
                                  f"are only {len(_FIELDS)}; allowed: {', '.join(ALLOWED)}"])
        # A template problem is the catalog's fault, not the user's: say so.
        prefix = "base model parameter_template: " if source == "template" else ""
        start = len(problems)
        for name, value in values.items():
            if name not in _FIELDS:
                problems.append(f"unknown parameter {_shown(name)}; allowed: {', '.join(ALLOWED)}")
                continue
            try:
                converted = _convert(name, value)
            except ValueError:
                problems.append(f"{name} must be {_describe(name)}, got {_shown(value)}")
                continue
            problem = _check(name, converted, value) if converted is not None else None
            if problem:
                problems.append(problem)
                continue
            resolved[name] = converted
        problems[start:] = [prefix + p for p in problems[start:]]
    if problems:
        raise ParameterError(problems)
    return resolved


def wire_parameters(values: dict[str, Any] | None) -> dict[str, str | int | float]:
    """Parameters as the Emissary contract shows them (string or number values only):
    booleans become "true"/"false" (which `resolve_parameters` reads back), unset (None)
    values are left out."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else v
            for k, v in (values or {}).items() if v is not None}


def parse_parameters(resolved: dict[str, Any] | None, *,
                     ignore_unknown: bool = False) -> TrainingParameters:
    """The typed object for a job's stored `hyper_parameters` (validated again): the one
    way anything reads a job's settings, so every default comes from this module.

    `ignore_unknown` drops names this version does not know (the CLI reading a newer
    server's job); everywhere else an unknown name is an error.
    """
    values = dict(resolved or {})
    if ignore_unknown:
        values = {k: v for k, v in values.items() if k in _FIELDS}
    return TrainingParameters(**resolve_parameters(values))


__all__ = [
    "ALLOWED", "FIELD_HELP", "LR_SCHEDULERS", "OPTIMIZERS", "ParameterError",
    "TrainingParameters", "defaults", "parse_parameters", "resolve_parameters",
    "wire_parameters",
]
