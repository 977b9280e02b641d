"""Dataset files: formats and shapes detected, every record validated, split and resampled.

Pure Python (pyarrow only for Parquet, imported when one is read); no torch. Modules:

    errors    DatasetIssue, DatasetValidationError
    readers   file format detection; JSONL, JSON array, CSV and Parquet records, streamed
    shapes    record shapes, per-record checks, normalized records
    validate  inspect_dataset, load_examples: a whole file checked, line-numbered issues
    tasks     which shapes train which task; records in a task's form
    split     train/test split, downsampling, label rebalancing (choose_examples: all
              three, once per job); deterministic by seed
"""

from .errors import DatasetIssue, DatasetValidationError
from .split import (
    DEFAULT_TEST_SPLIT,
    choose_examples,
    downsample,
    normalize_split_ratio,
    rebalance,
    split_examples,
)
from .tasks import TASK_TYPES, TECHNIQUES, task_fit_error, to_task_examples
from .validate import DatasetInfo, inspect_dataset, load_examples

__all__ = [
    "DEFAULT_TEST_SPLIT",
    "TASK_TYPES",
    "TECHNIQUES",
    "DatasetInfo",
    "DatasetIssue",
    "DatasetValidationError",
    "choose_examples",
    "downsample",
    "inspect_dataset",
    "load_examples",
    "normalize_split_ratio",
    "rebalance",
    "split_examples",
    "task_fit_error",
    "to_task_examples",
]
