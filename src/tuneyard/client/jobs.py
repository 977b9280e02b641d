"""Training jobs and their checkpoints (`/v1/projects/{id}/training-jobs`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ._resource import Resource, body, seg, target_path
from .errors import TuneyardAPIError, TuneyardClientError
from .transfer import DownloadResult, Progress, download, extract_tar
from .types import Checkpoint, JobEvent, TrainingJob


class Jobs(Resource):
    """Create, follow and manage fine-tuning jobs; list and download checkpoints."""

    @staticmethod
    def _path(project_id: str, job_id: str | None = None, tail: str = "") -> str:
        path = f"/v1/projects/{seg(project_id)}/training-jobs"
        return path if job_id is None else f"{path}/{seg(job_id)}{tail}"

    def create(
        self,
        project_id: str,
        *,
        base_model: str,
        train_dataset_id: str,
        test_dataset_id: str | None = None,
        train_test_split_ratio: float | None = None,
        name: str | None = None,
        description: str | None = None,
        task_type: str | None = None,
        parameters: dict[str, Any] | None = None,
        test_functions: list[str] | None = None,
        base_model_option: str | None = None,
        checkpoint: int | None = None,
        hf_model_link: str | None = None,
        rebalance_data: dict[str, float] | None = None,
        training_technique: str | None = None,
        reward: dict[str, float] | None = None,
    ) -> TrainingJob:
        """Start a fine-tuning job; returns its summary (status `Pending`).

        To continue training from a checkpoint, pass `base_model_option="fine-tuned"`,
        the earlier job's name or id as `base_model` and its number as `checkpoint`.
        `training_technique`: "SFT" (default), "DPO" (a prompt/chosen/rejected dataset)
        or "GRPO", which needs `reward` (test function -> weight) and `test_functions`
        and goes to Emissary v2's `…/training-jobs/grpo` route.
        """
        technique = (training_technique or "").upper() or None
        if reward is not None and technique in (None, "GRPO"):
            technique = "GRPO"
        payload = body(
            base_model=base_model, train_dataset_id=train_dataset_id,
            test_dataset_id=test_dataset_id, train_test_split_ratio=train_test_split_ratio,
            name=name, description=description, task_type=task_type,
            parameters=parameters or None, test_functions=test_functions,
            base_model_option=base_model_option, checkpoint=checkpoint,
            hf_model_link=hf_model_link, rebalance_data=rebalance_data,
        )
        path = self._path(project_id)
        if technique == "GRPO":
            path += "/grpo"
            payload["reward"] = reward
        elif technique not in (None, "SFT"):
            payload["training_technique"] = technique
        return TrainingJob.model_validate(self._http.json("POST", path, json=payload))

    def list(self, project_id: str) -> list[TrainingJob]:
        return [TrainingJob.model_validate(j)
                for j in self._http.pages(self._path(project_id))]

    def get(self, project_id: str, job_id: str) -> TrainingJob:
        """The job in detail: progress, training loss, hyperparameters, error."""
        return TrainingJob.model_validate(self._http.json("GET", self._path(project_id, job_id)))

    def cancel(self, project_id: str, job_id: str) -> None:
        self._http.request("POST", self._path(project_id, job_id, "/cancel"))

    def delete(self, project_id: str, job_id: str) -> None:
        """Delete the job (cancelling it first if it runs) and its checkpoints."""
        self._http.request("DELETE", self._path(project_id, job_id))

    def wait(self, project_id: str, job_id: str, *, poll_s: float = 2.0,
             timeout_s: float | None = None,
             on_update: Callable[[TrainingJob], None] | None = None) -> TrainingJob:
        """Poll until the job ends (Success, Failed, TimedOut, Cancelled) or is Paused;
        return it.

        Raises `TimeoutError` if `timeout_s` passes first.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get(project_id, job_id)
            if on_update is not None:
                on_update(job)
            if job.stopped:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def events(self, project_id: str, job_id: str, *, after: int | None = None,
               limit: int | None = None) -> list[JobEvent]:
        """A page of the job's events, oldest first, after event id `after`."""
        params = {k: v for k, v in (("after", after), ("limit", limit)) if v is not None}
        rows = self._http.json("GET", self._path(project_id, job_id, "/events"), params=params)
        return [JobEvent.model_validate(e) for e in rows]

    def pause(self, project_id: str, job_id: str) -> None:
        """Stop after publishing a checkpoint (status Paused)."""
        self._http.request("POST", self._path(project_id, job_id, "/pause"))

    def resume(self, project_id: str, job_id: str) -> None:
        """Continue a paused job from its latest checkpoint."""
        self._http.request("POST", self._path(project_id, job_id, "/resume"))

    def checkpoints(self, project_id: str, job_id: str) -> list[Checkpoint]:
        """The job's checkpoints, oldest first, with their test results so far."""
        rows = self._http.json("GET", self._path(project_id, job_id, "/checkpoints"))
        return sorted((Checkpoint.model_validate(c) for c in rows), key=lambda c: c.checkpoint)

    def checkpoint(self, project_id: str, job_id: str, number: int) -> Checkpoint:
        """One checkpoint by number (the API lists them; this picks one)."""
        found = self.checkpoints(project_id, job_id)
        for ckpt in found:
            if ckpt.checkpoint == number:
                return ckpt
        have = ", ".join(str(c.checkpoint) for c in found) or "none yet"
        raise TuneyardAPIError(404, f"job {job_id} has no checkpoint {number} (it has: {have})",
                               code="object_not_found")

    def download_checkpoint(
        self,
        project_id: str,
        job_id: str,
        number: int,
        dest: str | os.PathLike | None = None,
        *,
        extract_to: str | os.PathLike | None = None,
        progress: Progress | None = None,
    ) -> DownloadResult:
        """Download checkpoint `number` as one tar archive; optionally unpack it.

        The archive goes to `dest` (default `<job>-checkpoint-<n>.tar` here; a
        directory means "in there"). An interrupted download resumes from the
        `.part` file; the result is checked against `archive_sha256` (or the
        server's checksum header) before it takes its name. `extract_to` then
        unpacks it: a directory that can rebuild the model on its own.
        """
        ckpt = self.checkpoint(project_id, job_id, number)
        if not ckpt.model_download_url:
            raise TuneyardClientError(
                f"checkpoint {number} of {job_id} has no weights to download "
                "(pruned by keep_checkpoints, or not yet archived)"
            )
        default_name = f"{job_id}-checkpoint-{number}.tar"
        target = target_path(dest, default_name)
        result = download(self._http, ckpt.model_download_url, target,
                          sha256=ckpt.archive_sha256, progress=progress)
        if extract_to is not None:
            extract_tar(result.path, extract_to)
        return result
