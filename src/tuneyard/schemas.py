"""Wire models, named after the Emissary contract's schemas.

Fields beyond the contract are marked "extra" in their description; the real
Emissary SDK ignores them, tuneyard's own client uses them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class BaseModelSummary(Wire):
    name: str
    type: str
    parameter_template: dict[str, str | float | int | bool]
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


class DeploymentSummary(Wire):
    id: str
    name: str
    status: str
    created_at: int


class ProjectDetail(ProjectSummary):
    datasets: list[DatasetSummary]
    training_jobs: list[TrainingJobSummary]
    deployments: list[DeploymentSummary]
