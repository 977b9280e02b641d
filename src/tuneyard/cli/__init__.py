"""The `tuneyard` command line: thin typer commands over the typed HTTP client.

One module per command group, mirroring the client's namespaces:
`projects` (projects, datasets), `jobs` (jobs, checkpoints), `deployments`
(deployments, inference), `catalog` (models, test functions), `account`
(login), `server` (serve, worker, keys, db: the only commands that touch the
server's own modules, imported when run). Every command imports the client
lazily, so `tuneyard --help` loads neither httpx nor pydantic, let alone torch.
"""

from __future__ import annotations

import typer

from . import account, catalog, demo, deployments, engines, jobs, projects, server
from ._session import Group

app = typer.Typer(cls=Group, no_args_is_help=True, add_completion=False,
                  help="tuneyard: self-hosted fine-tuning with the Emissary API.")

for command in (server.serve, server.worker, account.login, account.logout):
    app.command()(command)
app.command()(demo.demo)
for sub_app, name in (
    (server.keys_app, "keys"),
    (server.db_app, "db"),
    (catalog.models_app, "models"),
    (catalog.test_functions_app, "test-functions"),
    (projects.projects_app, "projects"),
    (projects.datasets_app, "datasets"),
    (jobs.jobs_app, "jobs"),
    (jobs.checkpoints_app, "checkpoints"),
    (deployments.deployments_app, "deployments"),
    (engines.engines_app, "engines"),
):
    app.add_typer(sub_app, name=name)
for command in (deployments.complete, deployments.chat, deployments.classify,
                deployments.embed):
    app.command()(command)

__all__ = ["app"]
