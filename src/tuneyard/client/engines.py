"""Inference engines (Emissary v2, `/v1/engines`): one base model serving many
LoRA checkpoints; a deployment on an engine is queried like any other."""

from __future__ import annotations

from typing import Any

from ._resource import Resource, body, seg
from .types import Deployment, Engine


class Engines(Resource):
    @staticmethod
    def _path(engine_id: str | None = None, tail: str = "") -> str:
        return "/v1/engines" if engine_id is None else f"/v1/engines/{seg(engine_id)}{tail}"

    def create(self, base_model: str, *, name: str | None = None,
               task_type: str | None = None,
               resource_management_config: dict[str, Any] | None = None) -> Engine:
        """`resource_management_config`: {"management_type": "inactive_timeout",
        "management_config": {"inactive_duration": s}} or a weekly "schedule"
        ({timezone, start_time, end_time, days})."""
        payload = body(base_model=base_model, name=name, task_type=task_type,
                       resource_management_config=resource_management_config)
        return Engine.model_validate(self._http.json("POST", self._path(), json=payload))

    def list(self, *, base_model: str | None = None,
             task_type: str | None = None) -> list[Engine]:
        params = body(base_model=base_model, task_type=task_type)
        return [Engine.model_validate(e)
                for e in self._http.json("GET", self._path(), params=params)]

    def get(self, engine_id: str) -> Engine:
        return Engine.model_validate(self._http.json("GET", self._path(engine_id)))

    def delete(self, engine_id: str) -> None:
        self._http.request("DELETE", self._path(engine_id))

    def deploy(self, engine_id: str, *, project_id: str, training_id: str, checkpoint: int,
               name: str | None = None) -> Deployment:
        """Deploy a LoRA checkpoint of the engine's base model on it."""
        payload = body(project_id=project_id, training_id=training_id, checkpoint=checkpoint,
                       name=name)
        return Deployment.model_validate(
            self._http.json("POST", self._path(engine_id, "/deploy"), json=payload))

    def undeploy(self, engine_id: str, deployment_name: str) -> None:
        self._http.request("POST", self._path(engine_id, "/undeploy"),
                           json={"deployment_name": deployment_name})

    def reactivate(self, engine_id: str) -> None:
        self._http.request("POST", self._path(engine_id, "/reactivate"))

    def deactivate(self, engine_id: str) -> None:
        self._http.request("POST", self._path(engine_id, "/deactivate"))
