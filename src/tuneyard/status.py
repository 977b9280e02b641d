"""Status names: one definition each, for jobs, checkpoint evaluations and deployments.

They are `StrEnum`s, so a member *is* its string: the DB stores and the API
sends exactly the values below (the Emissary contract fixes the job and
deployment names; a value read back from the DB compares equal to its member).
The state machines are described in docs/architecture.md. Light: no imports
beyond the standard library, so the client may use it too.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A training job's `status` (contract: TrainingJobSummary.status)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"
    PAUSED = "Paused"  # extra: stopped after a checkpoint; resume continues from it


JOB_FINAL = frozenset({JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.TIMED_OUT,
                       JobStatus.CANCELLED})
"""After these nothing more happens to the job itself (its evaluations may go on)."""


class TestStatus(StrEnum):
    """A checkpoint's evaluation: `test_status` (an extra beyond the contract)."""

    __test__ = False  # not a pytest class, despite its name

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


TEST_FINAL = frozenset({TestStatus.DONE, TestStatus.FAILED})


class DeploymentStatus(StrEnum):
    """A deployment's `status` (contract: DeploymentSummary.status)."""

    PENDING = "Pending"
    DEPLOYING = "Deploying"
    DEPLOYED = "Deployed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"


DEPLOYMENT_LIVE = (DeploymentStatus.PENDING, DeploymentStatus.DEPLOYING,
                   DeploymentStatus.DEPLOYED)
"""Wanted up: loading, loaded, or (serverless) loaded on the next request."""

DEPLOYMENT_STOPPED = frozenset({DeploymentStatus.FAILED, DeploymentStatus.CANCELLED,
                                DeploymentStatus.TIMED_OUT})
"""Serves nothing until reactivated."""
