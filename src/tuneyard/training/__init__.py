"""Training: typed hyperparameters, the checkpoint protocol and one recipe per task.

The API server imports `tuneyard.training.params` to validate requests, so this
package's import must stay light: `run_job` (torch, transformers) is loaded
only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.training.job import TASK_TYPES, JobSpec, NullEvents, TrainingError, TrainingEvents
from tuneyard.training.params import (
    FIELD_HELP,
    ParameterError,
    TrainingParameters,
    resolve_parameters,
)

if TYPE_CHECKING:
    from tuneyard.training.run import run_job

__all__ = [
    "FIELD_HELP", "TASK_TYPES", "JobSpec", "NullEvents", "ParameterError", "TrainingError",
    "TrainingEvents", "TrainingParameters", "resolve_parameters", "run_job",
]


def __getattr__(name: str) -> Any:
    if name == "run_job":
        from tuneyard.training.run import run_job

        return run_job
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
