"""ORM tables of the metadata database (SQLAlchemy 2, typed mappings).

Timestamps are unix seconds (ints), as on the wire. JSON columns hold small
documents only (hyperparameters, the bounded loss curve, test results).
"""

from __future__ import annotations

import time

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tuneyard.status import DeploymentStatus, JobStatus, TestStatus


def now() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the key: keys are 256-bit random, so a fast hash is enough and
    # lets every request find its key with one indexed lookup.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    user: Mapped[User] = relationship()


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now, onupdate=now)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(300))
    is_uploaded: Mapped[bool] = mapped_column(Boolean, default=False)
    storage_key: Mapped[str] = mapped_column(String(500))
    file_format: Mapped[str] = mapped_column(String(20))
    shape: Mapped[str] = mapped_column(String(40))
    num_records: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list | None] = mapped_column(JSON, nullable=True)
    multi_label: Mapped[bool] = mapped_column(Boolean, default=False)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    upload_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now, onupdate=now)


class TrainingJob(Base):
    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_model: Mapped[str] = mapped_column(String(300))
    base_model_option: Mapped[str] = mapped_column(String(40), default="base")
    # Continued training: the job and checkpoint number this job starts from.
    source_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_checkpoint: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hf_model_link: Mapped[str | None] = mapped_column(String(500), nullable=True)
    task_type: Mapped[str] = mapped_column(String(40))
    train_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True
    )
    test_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True
    )
    split: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    hyper_parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    rebalance_data: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    test_functions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.PENDING, index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    training_loss: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Pause: the training child publishes a checkpoint at its next step and stops (Paused).
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when early stopping decided training should end: the stop is a Success.
    early_stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    best_checkpoint: Mapped[int | None] = mapped_column(Integer, nullable=True)
    baseline_test_results: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now, onupdate=now)
    started_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Who evaluates the job's checkpoints once training is over (a claim with a
    # heartbeat, as for training): leftovers of a crash are picked up again.
    eval_worker_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    eval_heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    # SFT, DPO or GRPO (migration 0005); GRPO's reward: test function -> weight.
    training_technique: Mapped[str] = mapped_column(String(10), default="SFT",
                                                    server_default="SFT")
    reward: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Per logging step, what the trainer reports beyond the loss (DPO reward
    # accuracy and margins, GRPO mean reward): [{step, timestamp, name: value}].
    training_metrics: Mapped[list | None] = mapped_column(JSON, nullable=True)

    # Bumped in the same transaction as every change to one of the job's checkpoint
    # rows (tuneyard.checkpoint_versions): the key of the listing's cached bytes.
    checkpoints_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="job", order_by="Checkpoint.number", passive_deletes=True
    )


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "number", name="uq_checkpoint_job_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float] = mapped_column(Float)
    storage_prefix: Mapped[str] = mapped_column(String(500))
    archive_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    archive_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    archive_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    eval_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Filled by evaluation: {general_test_result_key, aggregated_test_result}.
    test_results: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    test_status: Mapped[str] = mapped_column(String(20), default=TestStatus.PENDING)
    test_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pruned: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now, onupdate=now)

    job: Mapped[TrainingJob] = relationship(back_populates="checkpoints")


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The job and checkpoint served; checkpoint 0 with no job serves a base model.
    training_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    checkpoint: Mapped[int] = mapped_column(Integer)
    base_model: Mapped[str] = mapped_column(String(300))
    task_type: Mapped[str] = mapped_column(String(40))
    server_type: Mapped[str] = mapped_column(String(20), default="on-demand")
    inactive_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=DeploymentStatus.PENDING,
                                        index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Where its model server listens while loaded (None when unloaded).
    server_url: Mapped[str | None] = mapped_column(String(200), nullable=True)
    server_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The server process's start time (tuneyard.processes.process_identity),
    # recorded with its pid at spawn: a recycled pid is never killed.
    server_identity: Mapped[str | None] = mapped_column(String(100), nullable=True)
    loaded: Mapped[bool] = mapped_column(Boolean, default=False)
    last_request_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now, onupdate=now)
    # Set for a deployment on an inference engine: the engine's model server
    # serves it (as a LoRA adapter), it has no server of its own.
    engine_id: Mapped[str | None] = mapped_column(
        ForeignKey("engines.id", ondelete="CASCADE"), nullable=True, index=True)


class Engine(Base):
    """An inference engine (Emissary v2): one base model in one model server,
    serving the LoRA checkpoints deployed on it (deployments with its engine_id)."""

    __tablename__ = "engines"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    base_model: Mapped[str] = mapped_column(String(300))
    task_type: Mapped[str] = mapped_column(String(40))
    # {management_type: inactive_timeout | schedule, management_config: {...}}
    resource_management_config: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="Creating")
    # False after an explicit deactivate, until reactivate.
    wanted: Mapped[bool] = mapped_column(Boolean, default=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    server_url: Mapped[str | None] = mapped_column(String(200), nullable=True)
    server_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_request_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now, onupdate=now)


class JobEvent(Base):
    """What happened to a training job, in order: created, claimed, started, step
    metrics, checkpoints published and evaluated, status changes, errors."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    level: Mapped[str] = mapped_column(String(10), default="info")  # info | warn | error
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class OpenAIJob(Base):
    """A training job created through the OpenAI-compatible API: what it was asked
    for (with "auto") and what that resolved to."""

    __tablename__ = "openai_jobs"

    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    method: Mapped[str] = mapped_column(String(20), default="supervised")
    hyperparameters: Mapped[dict] = mapped_column(JSON, default=dict)
    requested: Mapped[dict] = mapped_column(JSON, default=dict)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Lease(Base):
    """A named role held by one process at a time until `expires_at` (unix seconds,
    float), renewed by its holder; anyone may take it once it has expired."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float)
    acquired_at: Mapped[float] = mapped_column(Float)


# Keeps TrainingJob.checkpoints_version in step with the checkpoint rows, in every
# process that writes them (registered on import, after the classes exist).
from tuneyard import checkpoint_versions as _checkpoint_versions  # noqa: E402,F401
