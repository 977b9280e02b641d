"""Training jobs: validate a request into a Pending row; list, get, cancel, delete.

Workers (tuneyard.worker) claim Pending rows and run them; nothing here
imports torch.
"""

from __future__ import annotations

import math
import re
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.catalog import DEFAULT_TASK, load_catalog
from tuneyard.config import Settings
from tuneyard.data import TASK_TYPES, TECHNIQUES, normalize_split_ratio, task_fit_error
from tuneyard.errors import InvalidInput, NotFound
from tuneyard.ids import new_id
from tuneyard.policy import DEFAULT_METRIC
from tuneyard.services.events import add_event
from tuneyard.services.limits import check_job_queue
from tuneyard.status import JobStatus
from tuneyard.storage import ArtifactStore, keys
from tuneyard.tables import Checkpoint, Dataset, Project, TrainingJob, User
from tuneyard.training.params import ParameterError, parse_parameters, resolve_parameters

BASE_MODEL_OPTIONS = ("pre-trained", "fine-tuned")
# A hub URL, whose path is the repo id (the forms accepted before stay accepted).
HF_URL = re.compile(r"^https?://(?:www\.)?huggingface\.co/(.+?)/?$")
# The hub's repo-id grammar: `name` or `owner/name`; ASCII letters, digits, `-_.`; each part
# starts and ends with a letter or digit; no `--` or `..`; at most 96 characters.
_HF_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
HF_REPO_ID = re.compile(rf"^(?:{_HF_PART}/)?{_HF_PART}$")
MAX_CHECKPOINT = 1_000_000
MAX_REBALANCE_LABELS = 1000
MAX_REBALANCE_COUNT = 1_000_000
MAX_TEST_FUNCTIONS = 32


def hf_repo_id(link: str) -> str | None:
    """The repo id an `hf_model_link` names (`owner/name`, `name` or its hub URL), or None."""
    link = link.strip()
    match = HF_URL.match(link)
    repo = match.group(1) if match else link
    if len(repo) > 96 or ".." in repo or "--" in repo or not HF_REPO_ID.match(repo):
        return None
    return repo


def _dataset(session: Session, project: Project, dataset_id: str, field: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id) if isinstance(dataset_id, str) else None
    if dataset is None or dataset.project_id != project.id:
        raise InvalidInput(f"{field}: dataset {dataset_id!r} not found in this project")
    return dataset


def find_job(session: Session, project: Project, ref: str) -> TrainingJob | None:
    """A job of this project by id, else by name (the newest of that name)."""
    job = session.get(TrainingJob, ref)
    if job is not None and job.project_id == project.id:
        return job
    return session.scalars(
        select(TrainingJob).where(TrainingJob.project_id == project.id, TrainingJob.name == ref)
        .order_by(TrainingJob.id.desc())
    ).first()


def _source_checkpoint(session: Session, project: Project, body) -> tuple[TrainingJob, int]:
    """Continued training: the job named by `base_model` and its checkpoint."""
    if body.checkpoint is None:
        raise InvalidInput("checkpoint: required when base_model_option is 'fine-tuned'")
    if not math.isfinite(body.checkpoint) or not 1 <= body.checkpoint <= MAX_CHECKPOINT:
        raise InvalidInput(f"checkpoint: must be a checkpoint number >= 1 and <= "
                           f"{MAX_CHECKPOINT}, got {body.checkpoint}")
    number = int(body.checkpoint)
    if number != body.checkpoint:
        raise InvalidInput(f"checkpoint: must be a checkpoint number >= 1, got {body.checkpoint}")
    source = find_job(session, project, body.base_model)
    if source is None:
        raise InvalidInput(
            f"base_model: with base_model_option 'fine-tuned' it names a training job of this "
            f"project (by name or id); {body.base_model!r} is none"
        )
    row = session.scalar(select(Checkpoint).where(Checkpoint.job_id == source.id,
                                                  Checkpoint.number == number))
    if row is None:
        raise InvalidInput(f"checkpoint: training job {source.id} has no checkpoint {number}")
    if row.pruned:
        raise InvalidInput(f"checkpoint: checkpoint {number} of {source.id} was pruned "
                           "(its weights are gone); pick a kept one")
    return source, number


# The metric that picks a preference or reinforcement job's best checkpoint.
TECHNIQUE_METRIC = {"DPO": "preference_accuracy", "GRPO": "reward"}


def _technique(value) -> str:
    if value is None or value == "":
        return "SFT"
    technique = value.strip().upper() if isinstance(value, str) else value
    if technique not in TECHNIQUES:
        raise InvalidInput(f"training_technique: must be one of {', '.join(TECHNIQUES)}, "
                           f"got {value!r}")
    return technique


def create_job(*, session: Session, settings: Settings, project: Project, user: User,
               body, technique: str | None = None, reward: dict | None = None) -> TrainingJob:
    """Validate everything a worker will need, so a job fails at run time only for
    reasons that cannot be known now (weights unreachable, out of memory).

    `technique` (SFT, DPO or GRPO; default: the body's `training_technique`, else SFT)
    is how the job trains; GRPO needs `reward` (see `create_grpo_job`). The same
    checks, continued training and evaluation apply to every technique.
    """
    technique = _technique(technique or getattr(body, "training_technique", None))
    if technique == "GRPO" and reward is None:
        raise InvalidInput("training_technique: GRPO jobs are created with POST "
                           "/v1/projects/{project_id}/training-jobs/grpo (they need a reward)")
    if len(body.base_model) > 200:
        raise InvalidInput(f"base_model: at most 200 characters, got {len(body.base_model)}")
    option = body.base_model_option or "pre-trained"
    if option not in BASE_MODEL_OPTIONS:
        raise InvalidInput(f"base_model_option: must be one of {', '.join(BASE_MODEL_OPTIONS)}")
    if body.task_type is not None and body.task_type not in TASK_TYPES:
        raise InvalidInput(f"task_type: must be one of {', '.join(TASK_TYPES)}, "
                           f"got {body.task_type!r}")
    catalog = load_catalog(settings.home)
    source_job, source_number, hf_repo = None, None, None
    if option == "fine-tuned":
        source_job, source_number = _source_checkpoint(session, project, body)
        base_name = source_job.base_model
        task_type = body.task_type or source_job.task_type
        if task_type != source_job.task_type:
            raise InvalidInput(f"task_type: continued training keeps the task of "
                               f"{source_job.id} ({source_job.task_type}), got {task_type}")
        template = catalog[base_name].parameter_template if base_name in catalog else {}
    elif body.hf_model_link:
        if not settings.allow_hub_models:
            raise InvalidInput("hf_model_link: this server does not load models from the "
                               "Hugging Face hub (TUNEYARD_ALLOW_HUB_MODELS is off); pick a "
                               "base model from GET /v1/models")
        hf_repo = hf_repo_id(body.hf_model_link)
        if hf_repo is None:
            shown = body.hf_model_link if len(body.hf_model_link) <= 120 else \
                body.hf_model_link[:117] + "..."
            raise InvalidInput("hf_model_link: expected a Hugging Face repo id (<org>/<name> or "
                               "<name>: letters, digits, '-', '_', '.'; no '..'; at most 96 "
                               f"characters) or https://huggingface.co/<repo id>, got {shown!r}")
        base_name = body.base_model
        known = catalog.get(base_name)
        task_type = body.task_type or (DEFAULT_TASK[known.type] if known else "text-generation")
        template = known.parameter_template if known else {}
    else:
        model = catalog.get(body.base_model)
        if model is None:
            raise InvalidInput(f"base_model: {body.base_model!r} is not in the catalog "
                               "(GET /v1/models lists them; hf_model_link names a hub model)")
        if not model.available:
            raise InvalidInput(f"base_model: the weights of {model.name!r} ({model.source}) "
                               "cannot be loaded on this server (not available offline)")
        base_name = model.name
        task_type = body.task_type or DEFAULT_TASK[model.type]
        template = model.parameter_template

    train = _dataset(session, project, body.train_dataset_id, "train_dataset_id")
    test = (_dataset(session, project, body.test_dataset_id, "test_dataset_id")
            if body.test_dataset_id else None)
    if technique != "SFT" and task_type != "text-generation":
        raise InvalidInput(f"task_type: {technique} trains text-generation models, "
                           f"got {task_type}")
    for field, dataset in (("train_dataset_id", train), ("test_dataset_id", test)):
        if dataset is not None and \
                (problem := task_fit_error(_info(dataset), task_type, technique)):
            raise InvalidInput(f"{field}: {problem}")
    try:
        params = resolve_parameters(body.parameters or {}, template=template)
    except ParameterError as exc:
        raise InvalidInput(f"parameters: {exc}") from None
    if parse_parameters(params).num_workers > 1 and not settings.ray_address:
        raise InvalidInput("parameters.num_workers: above 1 needs a Ray cluster "
                           "(TUNEYARD_RAY_ADDRESS is not set on this server)")
    if task_type == "embedding" and parse_parameters(params).use_lora:
        raise InvalidInput("parameters: use_lora is not supported for embedding models yet; "
                           "set use_lora to false")
    if "timeout_seconds" not in (body.parameters or {}) and \
            "timeout_seconds" not in template and not params.get("timeout_seconds"):
        params["timeout_seconds"] = settings.default_timeout_seconds  # the server's default
    if "metric_for_best_model" not in (body.parameters or {}) and \
            "metric_for_best_model" not in template:
        params["metric_for_best_model"] = TECHNIQUE_METRIC.get(technique,
                                                               DEFAULT_METRIC[task_type])
    if technique == "GRPO":
        _check_generations(parse_parameters(params))
    split = None
    if test is None:
        try:
            fraction = normalize_split_ratio(body.train_test_split_ratio)
        except ValueError as exc:
            raise InvalidInput(f"train_test_split_ratio: {exc}") from None
        split = {"test_fraction": fraction, "seed": parse_parameters(params).seed}
    rebalance = _check_rebalance(body.rebalance_data, task_type, train)
    test_functions = _check_test_functions(body.test_functions, settings)
    if technique == "GRPO":
        if not test_functions:
            raise InvalidInput("test_functions: required for GRPO (the functions evaluating "
                               "each checkpoint); GET /v1/testing-functions lists them")
        reward = _check_reward(reward, settings)
    else:
        reward = None

    check_job_queue(session=session, settings=settings, user=user)
    job = TrainingJob(
        id=new_id("tr"), project_id=project.id, name=(body.name or "").strip() or None,
        description=body.description, base_model=base_name, base_model_option=option,
        source_job_id=source_job.id if source_job else None, source_checkpoint=source_number,
        hf_model_link=hf_repo, task_type=task_type, train_dataset_id=train.id,
        test_dataset_id=test.id if test else None, split=split, hyper_parameters=params,
        rebalance_data=rebalance, test_functions=test_functions, status=JobStatus.PENDING,
        training_technique=technique, reward=reward,
        progress=0, training_loss=[], created_by=user.id,
    )
    job.name = job.name or f"training-{job.id[3:11]}"
    session.add(job)
    session.flush()
    add_event(session, job.id, "created",
              f"created: {task_type} fine-tuning of {base_name} on {train.id} "
              f"({train.num_records} records)",
              data={"base_model": base_name, "train_dataset_id": train.id,
                    "test_dataset_id": test.id if test else None})
    return job


def _info(dataset: Dataset):
    from tuneyard.data import DatasetInfo

    return DatasetInfo(file_format=dataset.file_format, shape=dataset.shape,
                       num_records=dataset.num_records, labels=dataset.labels,
                       multi_label=dataset.multi_label)


def _check_rebalance(spec, task_type: str, train: Dataset) -> dict | None:
    if not spec:
        return None
    if task_type != "classification":
        raise InvalidInput("rebalance_data: only supported for the classification task")
    if not isinstance(spec, dict):
        raise InvalidInput("rebalance_data: must be an object of label -> ratio or count")
    if len(spec) > MAX_REBALANCE_LABELS:
        raise InvalidInput(f"rebalance_data: at most {MAX_REBALANCE_LABELS} labels, "
                           f"got {len(spec)}")
    known = set(train.labels or [])
    for label, value in spec.items():
        shown = label if len(label) <= 80 else label[:77] + "..."
        if known and label not in known:
            raise InvalidInput(f"rebalance_data: label {shown!r} is not in the training set "
                               f"(labels: {', '.join(sorted(known))})")
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or not 0 <= value <= MAX_REBALANCE_COUNT:
            raise InvalidInput(f"rebalance_data: {shown!r} must be a ratio or count >= 0 "
                               f"and <= {MAX_REBALANCE_COUNT}")
    return dict(spec)


def _check_test_functions(names, settings: Settings) -> list[str] | None:
    if not names:
        return None
    names = list(dict.fromkeys(names))  # each once, in the order given
    if len(names) > MAX_TEST_FUNCTIONS:
        raise InvalidInput(f"test_functions: at most {MAX_TEST_FUNCTIONS} functions, "
                           f"got {len(names)}")
    from tuneyard.evaluation.functions import list_test_functions

    available = {f.name for f in list_test_functions(settings.home)}
    unknown = [n if len(n) <= 80 else n[:77] + "..." for n in names if n not in available]
    if unknown:
        raise InvalidInput(f"test_functions: unknown {', '.join(map(repr, unknown))}; "
                           f"available: {', '.join(sorted(available))}")
    return list(names)


def list_jobs(*, session: Session, project: Project, after: str | None = None,
              limit: int | None = None) -> list[TrainingJob]:
    """The project's jobs by id; `after`/`limit` read one page of them."""
    query = select(TrainingJob).where(TrainingJob.project_id == project.id)
    if after is not None:
        query = query.where(TrainingJob.id > after)
    return list(session.scalars(query.order_by(TrainingJob.id).limit(limit)))


def create_grpo_job(*, session: Session, settings: Settings, project: Project, user: User,
                    body) -> TrainingJob:
    """Emissary v2's GRPO job: `reward` (test function -> weight) and `test_functions`
    are required; otherwise a job like any other."""
    if getattr(body, "reward", None) is None:
        raise InvalidInput("reward: required for GRPO: an object of test function name -> "
                           "weight, e.g. {\"exact_match\": 1.0}")
    if not body.test_functions:
        raise InvalidInput("test_functions: required for GRPO (the functions evaluating "
                           "each checkpoint); GET /v1/testing-functions lists them")
    return create_job(session=session, settings=settings, project=project, user=user,
                      body=body, technique="GRPO", reward=body.reward)


def _check_reward(reward, settings: Settings) -> dict[str, float]:
    """The reward weights: known test functions, finite numbers, at least one not zero."""
    if not isinstance(reward, dict) or not reward:
        raise InvalidInput("reward: must be a non-empty object of test function name -> weight")
    if len(reward) > MAX_TEST_FUNCTIONS:
        raise InvalidInput(f"reward: at most {MAX_TEST_FUNCTIONS} functions, got {len(reward)}")
    from tuneyard.evaluation.functions import list_test_functions

    available = {f.name for f in list_test_functions(settings.home)}
    weights: dict[str, float] = {}
    for name, weight in reward.items():
        shown = name if len(name) <= 80 else name[:77] + "..."
        if name not in available:
            raise InvalidInput(f"reward: unknown test function {shown!r}; available: "
                               f"{', '.join(sorted(available))}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) \
                or not math.isfinite(weight) or abs(weight) > 1e6:
            raise InvalidInput(f"reward: the weight of {shown!r} must be a finite number "
                               f"(at most 1e6 in size), got {weight!r}")
        weights[name] = float(weight)
    if not any(weights.values()):
        raise InvalidInput("reward: every weight is 0; nothing would be rewarded")
    return weights


def _check_generations(params) -> None:
    """TRL groups a batch's completions by prompt: the batch must hold whole groups."""
    batch = params.per_device_train_batch_size * params.gradient_accumulation_steps
    if batch % params.num_generations:
        raise InvalidInput(
            f"parameters: per_device_train_batch_size x gradient_accumulation_steps ({batch}) "
            f"must be a multiple of num_generations ({params.num_generations})")


def get_job(*, session: Session, project: Project, job_id: str) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None or job.project_id != project.id:
        raise NotFound(f"training job {job_id!r} not found in project {project.id!r}")
    return job


def list_checkpoints(*, session: Session, job: TrainingJob) -> list[Checkpoint]:
    return list(session.scalars(
        select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(Checkpoint.number)
    ))


def cancel_job(*, session: Session, job: TrainingJob) -> TrainingJob:
    """Pending → Cancelled now; Running → the worker stops the child within seconds."""
    if job.status in (JobStatus.PENDING, JobStatus.PAUSED):
        job.status = JobStatus.CANCELLED
        job.finished_at = int(time.time())
        add_event(session, job.id, "status", "job cancelled")
    elif job.status == JobStatus.RUNNING:
        job.cancel_requested = True
        add_event(session, job.id, "status", "cancel requested: training stops within seconds")
    session.flush()
    return job


def delete_job(*, session: Session, store: ArtifactStore, job: TrainingJob,
               wait_seconds: float = 15.0) -> None:
    """Cancel a running job first (waiting for its worker to stop it), then remove
    its rows and artifacts."""
    if job.status == JobStatus.RUNNING:
        cancel_job(session=session, job=job)
        session.commit()
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            session.refresh(job)
            if job.status != JobStatus.RUNNING:
                break
            time.sleep(0.2)
    prefix = keys.job_prefix(job)
    session.delete(job)
    session.commit()  # the row first: a failed commit leaves the files it still names
    store.delete_prefix(prefix)


def pause_job(*, session: Session, job: TrainingJob) -> TrainingJob:
    """Pending → Paused now; Running → the child publishes a checkpoint at its next
    step and stops (Paused). Anything else cannot be paused."""
    if job.status == JobStatus.PENDING:
        job.status = JobStatus.PAUSED
        add_event(session, job.id, "status", "job paused (it had not started)")
    elif job.status == JobStatus.RUNNING:
        if not job.pause_requested:
            job.pause_requested = True
            add_event(session, job.id, "status", "pause requested: training stops after "
                      "publishing a checkpoint at its next step")
    elif job.status != JobStatus.PAUSED:
        raise InvalidInput(f"training job {job.id} is {job.status}: only a pending or "
                           "running job can be paused")
    session.flush()
    return job


def resume_job(*, session: Session, job: TrainingJob) -> TrainingJob:
    """Paused → Pending: a worker claims it and continues from its latest checkpoint,
    with the same step count and checkpoint numbering."""
    if job.status == JobStatus.RUNNING and job.pause_requested:
        job.pause_requested = False  # not paused yet: simply keep running
        add_event(session, job.id, "status", "pause withdrawn: training continues")
    elif job.status != JobStatus.PAUSED:
        raise InvalidInput(f"training job {job.id} is {job.status}: only a paused job "
                           "can be resumed")
    else:
        job.status, job.pause_requested = JobStatus.PENDING, False
        job.worker_id, job.heartbeat_at = None, None
        add_event(session, job.id, "status", "job resumed: queued to continue from its "
                  "latest checkpoint")
    session.flush()
    return job
