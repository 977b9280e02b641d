"""Wire models, named after the Emissary contract's schemas.

Fields beyond the contract are marked "extra" in their description; the real
Emissary SDK ignores them, tuneyard's own client uses them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Integer columns are 32-bit on PostgreSQL (checkpoints, timeouts): a request's
# integers stay within that, so a bigger one is a 400 rather than a database error.
INT32_MAX = 2**31 - 1


class Wire(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class BaseModelSummary(Wire):
    name: str
    type: str
    parameter_template: dict[str, str | float | int]  # the contract: no booleans
    support_serverless: bool
    available: bool = Field(description="extra: whether the weights can be loaded here now")
    description: str = Field("", description="extra")


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(None, max_length=200)


class ProjectSummary(Wire):
    id: str
    name: str
    created_at: int = Field(description="extra")


class DatasetSummary(Wire):
    id: str
    name: str
    created_at: int
    is_uploaded: bool
    file_format: str = Field(description="extra: jsonl | json | csv | parquet")
    shape: str = Field(description="extra: the detected record shape")
    num_records: int = Field(description="extra")
    labels: list[str] | None = Field(None, description="extra: label set, if any")
    multi_label: bool = Field(False, description="extra")
    sha256: str = Field(description="extra: sha256 of the uploaded file")
    size_bytes: int = Field(description="extra")


class DatasetDetail(DatasetSummary):
    dataset_download_url: str
    upload_by: str
    updated_at: int


class TrainingJobSummary(Wire):
    id: str
    name: str
    base_model: str
    status: str
    progress: int
    created_by: str
    created_at: int
    updated_at: int
    task_type: str
    base_model_option: str
    training_technique: str = Field("SFT", description="v2: SFT | GRPO (tuneyard: also DPO)")
    reward: dict[str, float] | None = Field(None, description="v2 (GRPO): test function -> "
                                                               "reward weight")


class DeploymentSummary(Wire):
    id: str
    name: str
    status: str
    created_at: int
    engine_id: str | None = Field(None, description="extra: the inference engine serving "
                                                    "it (null: its own model server)")


class ProjectDetail(ProjectSummary):
    datasets: list[DatasetSummary]
    training_jobs: list[TrainingJobSummary]
    deployments: list[DeploymentSummary]


ParamValue = str | float | int | bool


class TrainingJobCreate(BaseModel):
    """The create body: the SDK contract's fields plus Emissary v2's additions."""

    model_config = ConfigDict(extra="forbid")
    base_model: str = Field(min_length=1)
    train_dataset_id: str = Field(min_length=1)
    test_dataset_id: str | None = None
    train_test_split_ratio: float | None = Field(None, allow_inf_nan=False)
    name: str | None = Field(None, max_length=200)
    description: str | None = None
    parameters: dict[str, ParamValue] | None = None
    hf_model_link: str | None = None
    task_type: str | None = None
    base_model_option: str | None = None
    checkpoint: float | None = Field(None, allow_inf_nan=False)
    rebalance_data: dict[str, float] | None = None
    test_functions: list[str] | None = None
    training_technique: str | None = Field(
        None, description="extra: SFT (default) or DPO (a preference dataset); GRPO jobs are "
                          "created with POST …/training-jobs/grpo")


class GRPOTrainingJobCreate(TrainingJobCreate):
    """Emissary v2's GRPO create body: the create body plus `reward`; `test_functions`
    and `reward` are required (checked by the service, so the error names the field)."""

    # Free-form here: the service checks each name and weight (finite, bounded) and
    # names the field in its 400.
    reward: dict[str, Any] | None = None


class LossPoint(BaseModel):
    timestamp: float
    loss: float
    step: int | None = Field(None, description="extra")


class TrainingJobDetail(TrainingJobSummary):
    description: str | None
    train_dataset: DatasetSummary | None
    test_dataset: DatasetSummary | None
    training_loss: list[LossPoint]
    hyper_parameters: dict[str, str | float | int]  # the contract: no booleans
    base_fine_tuned_model: str | None = Field(None, description="extra (v2)")
    base_fine_tuned_model_checkpoint: int | None = Field(None, description="extra (v2)")
    hf_model_link: str | None = Field(None, description="extra")
    test_functions: list[str] | None = Field(None, description="extra (v2)")
    split: dict | None = Field(None, description="extra: the held-out test share and seed")
    error: str | None = Field(None, description="extra: why the job failed")
    best_checkpoint: int | None = Field(None, description="extra")
    baseline_test_results: dict | None = Field(None, description="extra")
    started_at: int | None = Field(None, description="extra")
    finished_at: int | None = Field(None, description="extra")
    attempts: int = Field(0, description="extra: how many times a worker started it")
    training_metrics: list[dict] | None = Field(
        None, description="extra: per logging step, the trainer's metrics beyond the loss "
                          "(DPO: rewards/accuracies, rewards/margins; GRPO: reward)")


class TestResults(BaseModel):
    general_test_result: str | None
    aggregated_test_result: dict[str, str]
    details_test_result: str | None = Field(
        None, description="extra: signed URL of a JSON file with what is not per example "
                          "(classification per-class scores and confusion matrix, test "
                          "function summaries, generated samples)")


class TrainingJobCheckpoint(BaseModel):
    checkpoint: int
    model_download_url: str | None
    test_results: TestResults | None
    created_at: int
    updated_at: int
    step: int = Field(description="extra: optimizer step at which it was taken")
    epoch: float = Field(description="extra")
    eval_loss: float | None = Field(None, description="extra: loss on the test set")
    archive_sha256: str | None = Field(None, description="extra: sha256 of the download")
    archive_size: int | None = Field(None, description="extra: bytes of the download")
    test_status: str = Field("pending", description="extra: pending | running | done | failed")
    test_error: str | None = Field(None, description="extra")
    pruned: bool = Field(False, description="extra: weights removed by keep_checkpoints")


class DeploymentCreate(BaseModel):
    """The contract's create body plus v2's `inactive_timeout`."""

    model_config = ConfigDict(extra="forbid")
    training_job_id: str = Field(min_length=1, max_length=64)
    checkpoint: int = Field(ge=0, le=INT32_MAX)
    server_type: str | None = None
    name: str | None = Field(None, max_length=200)
    description: str | None = None
    inactive_timeout: int | None = Field(None, ge=0, le=INT32_MAX)


class DeploymentDetail(DeploymentSummary):
    description: str | None
    base_model: str
    training_id: str | None
    checkpoint: int
    updated_at: int
    task_type: str = Field(description="extra (v2)")
    server_type: str = Field(description="extra")
    inactive_timeout: int | None = Field(None, description="extra (v2)")
    active: bool = Field(description="extra: the model is loaded now (false: deactivated "
                                     "or serverless and idle; the next request loads it)")
    error: str | None = Field(None, description="extra: why it failed")
    labels: list[str] | None = Field(None, description="extra: classification labels")


class TestingFunctionSummary(BaseModel):
    __test__ = False  # not a pytest class, despite its name
    name: str
    content: str
    dependencies: list[str]
    builtin: bool = Field(description="extra: shipped with tuneyard")


# -- Emissary per-deployment inference (/v1/projects/…/deployments/{id}/…) ----------

class Sampling(BaseModel):
    model_config = ConfigDict(extra="allow")  # v2 names (max_tokens, …) pass through
    temperature: float | None = Field(None, allow_inf_nan=False)
    max_new_tokens: int | None = Field(None, ge=0, le=INT32_MAX)
    top_p: float | None = Field(None, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=0, le=INT32_MAX)
    no_repeat_ngram_size: int | None = Field(None, ge=0, le=INT32_MAX)
    do_sample: bool | None = None


class CompletionRequest(Sampling):
    prompt: str


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatRequest(Sampling):
    messages: list[ChatMessage]
    streaming: bool = False


class ClassificationRequest(BaseModel):
    source_sentence: str


class EmbeddingsRequest(BaseModel):
    source_sentence: str
    target_sentence: str
    cosine: bool = False
    manhattan: bool = False
    euclidean: bool = False


# -- OpenAI-style inference (Emissary v2: /v1/chat/completions, …) -------------------

class InferenceRequest(BaseModel):
    # OpenAI clients send fields we do not use (n, user, logprobs, …): ignore them.
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, description="a deployment's name or id")


class InferenceMessage(BaseModel):
    role: str
    content: str


class InferenceChatRequest(InferenceRequest):
    messages: list[InferenceMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict | None = None


class InferenceCompletionRequest(InferenceRequest):
    prompt: str | list[str]
    stream: bool = False


class InferenceEmbeddingRequest(InferenceRequest):
    input: str | list[str]
    encoding_format: str | None = "float"


class InferenceClassificationRequest(InferenceRequest):
    input: str | list[str]
    data_format: str = "logits"


class JobEventView(Wire):
    """extra: one event of a training job (`…/training-jobs/{id}/events`)."""

    id: int
    created_at: int
    level: str = Field(description="info | warn | error")
    kind: str = Field(description="created | claimed | started | metrics | checkpoint | "
                                  "evaluated | status | error")
    message: str
    data: dict | None = None


# -- inference engines (Emissary v2) ---------------------------------------------

class EngineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    base_model: str = Field(min_length=1, max_length=300)
    task_type: str | None = Field(None, max_length=40)
    resource_management_config: dict[str, Any] | None = None


class EngineSummary(Wire):
    id: str
    name: str
    status: str
    base_model: str
    server_type: str = "on-demand"
    task_type: str
    deployment_counts: int
    created_at: int


class EngineDetail(EngineSummary):
    deployments: list[DeploymentSummary]
    base_model_option: str = "pre-trained"
    last_access_timestamp: int | None = None
    resource_management_config: dict[str, Any] | None = None
    error: str | None = Field(None, description="extra: why it failed to start")
    next_active_at: int | None = Field(None, description="extra: when a scheduled engine "
                                                          "outside its window starts")


class EngineDeploy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    project_id: str = Field(min_length=1, max_length=64)
    training_id: str = Field(min_length=1, max_length=64)
    checkpoint: int = Field(ge=1, le=1_000_000)
    description: str | None = None


class EngineUndeploy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deployment_name: str = Field(min_length=1, max_length=200)
