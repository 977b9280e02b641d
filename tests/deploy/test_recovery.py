"""After a crash: deployments whose load was cut short load again, and model
servers a previous run left are stopped, by a pid checked before any signal."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy.orm import Session

from tuneyard.processes import group_alive, process_identity, spawn, stop_group

pytestmark = pytest.mark.postgres


def test_recovery_stops_left_servers_and_reloads_cut_short_loads(settings):
    from tuneyard.db import make_engine, upgrade
    from tuneyard.deploy.manager import DeploymentManager
    from tuneyard.storage import open_store
    from tuneyard.tables import Deployment, Project, User

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    orphan = spawn([sys.executable, "-c", "import time; time.sleep(600)"])  # a left server
    stranger = spawn([sys.executable, "-c", "import time; time.sleep(600)"])  # a recycled pid
    try:
        with Session(engine) as session:
            session.add(User(id="user-r", name="r"))
            session.flush()
            session.add(Project(id="ms-r", name="p", owner_id="user-r"))
            session.flush()

            def add(dp_id, status, server_type="on-demand", **values):
                session.add(Deployment(id=dp_id, project_id="ms-r", name=dp_id, checkpoint=0,
                                       base_model="m", task_type="text-generation",
                                       server_type=server_type, status=status,
                                       created_by="user-r", **values))

            # Killed mid-load, its server already spawned (pid recorded at once).
            add("dp-loading", "Deploying", server_pid=orphan.pid,
                server_identity=process_identity(orphan.pid))
            # Loaded and serving when the server died; its pid now belongs to
            # another process (another start time): that one is left alone.
            add("dp-loaded", "Deployed", loaded=True, server_pid=stranger.pid,
                server_identity="1", server_url="http://127.0.0.1:1")
            add("dp-serverless", "Deploying", server_type="serverless")
            add("dp-failed", "Failed", error="boom")
            session.commit()
        DeploymentManager(settings, engine, open_store(settings.resolved_storage_url))._recover()
        assert not group_alive(orphan.pid)
        assert stranger.poll() is None and group_alive(stranger.pid)
        with Session(engine) as session:
            rows = {r.id: r for r in session.query(Deployment)}
            assert rows["dp-loading"].status == "Pending"  # the manager loads it again
            assert rows["dp-loaded"].status == "Pending"
            assert rows["dp-serverless"].status == "Deployed"  # loads on its next request
            assert rows["dp-failed"].status == "Failed"
            for row in rows.values():
                assert (row.loaded, row.server_pid, row.server_identity, row.server_url) == \
                    (False, None, None, None)
    finally:
        stop_group(orphan, grace=0.1)
        stop_group(stranger, grace=0.1)
        engine.dispose()


def test_a_corrupt_download_is_refused_and_removed(tmp_path):
    import hashlib
    import json

    from tuneyard.checkpoints import CheckpointError
    from tuneyard.deploy.prepare import verify_model_files

    model = tmp_path / "model"
    model.mkdir()
    weights = b"weights" * 100
    (model / "model.safetensors").write_bytes(weights)
    manifest = {"files": {"model.safetensors": {
        "size": len(weights), "sha256": hashlib.sha256(weights).hexdigest()}}}
    (model / "checkpoint.json").write_text(json.dumps(manifest))
    verify_model_files(model)  # whole: accepted
    (model / "model.safetensors").write_bytes(b"X" + weights[1:])  # same size, one byte off
    with pytest.raises(CheckpointError, match="model.safetensors: does not match the sha256"):
        verify_model_files(model)
    assert not model.exists()
