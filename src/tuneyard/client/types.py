"""Typed views of the API's responses, lenient by design.

Every model allows fields it does not name (`extra="allow"`) and gives the
contract's optional fields defaults: a newer server that adds a field, or an
older one that lacks an extra, must never break the client. `to_dict()` gives
everything the server sent, which is what `--json` prints.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tuneyard.status import DEPLOYMENT_STOPPED, JOB_FINAL, TEST_FINAL, DeploymentStatus, JobStatus

# Job states after which nothing more happens to the job itself.
JOB_FINAL_STATES = JOB_FINAL
# Deployment states a waiting client stops at: up, or serving nothing until reactivated.
DEPLOYMENT_FINAL_STATES = frozenset({DeploymentStatus.DEPLOYED, *DEPLOYMENT_STOPPED})


class Record(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        """The object as plain JSON-able data, including fields this model does not name."""
        return self.model_dump(mode="json")


class BaseModelInfo(Record):
    """A base model from the catalog (`BaseModelSummary`)."""

    name: str
    type: str = ""
    parameter_template: dict[str, Any] = Field(default_factory=dict)
    support_serverless: bool = False
    available: bool | None = None
    description: str = ""


class Dataset(Record):
    """`DatasetSummary` or `DatasetDetail` (the detail adds the download URL)."""

    id: str
    name: str = ""
    created_at: int | None = None
    is_uploaded: bool = True
    file_format: str | None = None
    shape: str | None = None
    num_records: int | None = None
    labels: list[str] | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    dataset_download_url: str | None = None
    upload_by: str | None = None
    updated_at: int | None = None


class LossPoint(Record):
    timestamp: float
    loss: float
    step: int | None = None


class TestResults(Record):
    general_test_result: str | None = None
    aggregated_test_result: dict[str, Any] | None = None


class TrainingJob(Record):
    """`TrainingJobSummary` or `TrainingJobDetail`; detail-only fields default to empty."""

    id: str
    name: str = ""
    base_model: str = ""
    status: str = ""
    progress: int = 0
    task_type: str | None = None
    base_model_option: str | None = None
    created_by: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    description: str | None = None
    train_dataset: Dataset | None = None
    test_dataset: Dataset | None = None
    training_loss: list[LossPoint] = Field(default_factory=list)
    hyper_parameters: dict[str, Any] = Field(default_factory=dict)
    test_functions: list[str] | None = None
    error: str | None = None
    best_checkpoint: int | None = None
    baseline_test_results: TestResults | None = None
    training_technique: str = "SFT"
    """SFT, DPO or GRPO (a server without techniques trains SFT only)."""
    reward: dict[str, float] | None = None
    """GRPO: test function -> weight."""
    training_metrics: list[dict[str, Any]] | None = None
    """Per logging step: DPO reward accuracy and margins, GRPO mean reward."""

    @property
    def finished(self) -> bool:
        return self.status in JOB_FINAL_STATES

    @property
    def stopped(self) -> bool:
        """Ended, or paused (nothing more happens until it is resumed)."""
        return self.finished or self.status == JobStatus.PAUSED

    @property
    def latest_loss(self) -> float | None:
        return self.training_loss[-1].loss if self.training_loss else None


class Checkpoint(Record):
    """`TrainingJobCheckpoint` plus tuneyard's extras (step, epoch, archive_sha256 …)."""

    checkpoint: int
    model_download_url: str | None = None
    test_results: TestResults | None = None
    created_at: int | None = None
    updated_at: int | None = None
    step: int | None = None
    epoch: float | None = None
    archive_sha256: str | None = None
    archive_size: int | None = None
    eval_loss: float | None = None
    test_status: str | None = None
    test_error: str | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        """The aggregated test results, or {} while they have not landed."""
        if self.test_results and self.test_results.aggregated_test_result:
            return dict(self.test_results.aggregated_test_result)
        return {}

    @property
    def evaluated(self) -> bool:
        """Whether evaluation is over for this checkpoint (results landed or failed)."""
        if self.test_status is not None:
            return self.test_status in TEST_FINAL
        return self.test_results is not None


class Project(Record):
    """`ProjectSummary`, or `ProjectDetail` with its datasets, jobs and deployments."""

    id: str
    name: str = ""
    created_at: int | None = None
    datasets: list[Dataset] = Field(default_factory=list)
    training_jobs: list[TrainingJob] = Field(default_factory=list)
    deployments: list[Deployment] = Field(default_factory=list)


class Deployment(Record):
    """`DeploymentSummary` or `DeploymentDetail`."""

    id: str
    name: str = ""
    status: str = ""
    created_at: int | None = None
    updated_at: int | None = None
    description: str | None = None
    base_model: str | None = None
    training_id: str | None = None
    checkpoint: int | None = None
    error: str | None = None
    engine_id: str | None = None

    @property
    def settled(self) -> bool:
        return self.status in DEPLOYMENT_FINAL_STATES


class TestFunction(Record):
    """`TestingFunctionSummary`: a named Python scoring function."""

    name: str
    content: str = ""
    dependencies: list[str] = Field(default_factory=list)
    builtin: bool | None = None


class Completion(Record):
    """`CompletionObject` of `POST /v1/completions`."""

    id: str = ""
    model: str = ""
    choices: list[dict[str, Any]] = Field(default_factory=list)
    usage: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return self.choices[0].get("text", "") if self.choices else ""


class ChatCompletion(Record):
    """`ChatCompletionObject` of `POST /v1/chat/completions`."""

    id: str = ""
    model: str = ""
    choices: list[dict[str, Any]] = Field(default_factory=list)
    usage: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        if not self.choices:
            return ""
        return (self.choices[0].get("message") or {}).get("content") or ""


class Embeddings(Record):
    """`POST /v1/embeddings`: one vector per input, in input order."""

    data: list[dict[str, Any]] = Field(default_factory=list)
    model: str = ""
    usage: dict[str, Any] | None = None

    @property
    def vectors(self) -> list[list[float]]:
        ordered = sorted(self.data, key=lambda d: d.get("index", 0))
        return [d["embedding"] for d in ordered]


class Classification(Record):
    """`POST /v1/classification`: per input, label -> logit or probability."""

    id: str = ""
    model: str = ""
    data: list[dict[str, Any]] = Field(default_factory=list)
    usage: dict[str, Any] | None = None

    @property
    def scores(self) -> dict[str, float]:
        """The first input's label scores (logits or probs, whichever was asked)."""
        if not self.data:
            return {}
        first = self.data[0]
        return dict(first.get("probs") or first.get("logits") or {})

    @property
    def label(self) -> str | None:
        """The highest-scoring label of the first input."""
        scores = self.scores
        return max(scores, key=scores.__getitem__) if scores else None


Project.model_rebuild()


class JobEvent(Record):
    """One event of a training job (`…/training-jobs/{id}/events`)."""

    id: int
    created_at: int = 0
    level: str = "info"
    kind: str = ""
    message: str = ""
    data: dict[str, Any] | None = None


class Engine(Record):
    """`InferenceEngineSummary` or `InferenceEngineDetail` (Emissary v2)."""

    id: str
    name: str = ""
    status: str = ""
    base_model: str | None = None
    task_type: str | None = None
    deployment_counts: int = 0
    created_at: int | None = None
    deployments: list[Deployment] = Field(default_factory=list)
    resource_management_config: dict[str, Any] | None = None
    error: str | None = None
    next_active_at: int | None = None
