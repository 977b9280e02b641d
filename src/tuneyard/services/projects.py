"""Projects: a user's workspaces. Another user's project does not exist (404)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard.errors import InvalidInput, NotFound
from tuneyard.ids import new_id
from tuneyard.storage import ArtifactStore, keys
from tuneyard.tables import Project, User


def create_project(*, session: Session, owner: User, name: str | None = None) -> Project:
    project_id = new_id("ms")
    if name is not None:
        name = name.strip()
        if not name:
            raise InvalidInput("name: must not be empty")
        if len(name) > 200:
            raise InvalidInput("name: must be at most 200 characters")
    project = Project(id=project_id, name=name or f"project-{project_id[3:11]}",
                      owner_id=owner.id)
    session.add(project)
    session.flush()
    return project


def list_projects(*, session: Session, owner: User, after: str | None = None,
                  limit: int | None = None) -> list[Project]:
    """The owner's projects by id; `after`/`limit` read one page of them."""
    query = select(Project).where(Project.owner_id == owner.id)
    if after is not None:
        query = query.where(Project.id > after)
    return list(session.scalars(query.order_by(Project.id).limit(limit)))


def get_project(*, session: Session, owner: User, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None or project.owner_id != owner.id:
        raise NotFound(f"project {project_id!r} not found")
    return project


def delete_project(*, session: Session, store: ArtifactStore, project: Project) -> None:
    """Delete the project, its rows (cascade) and every artifact under it."""
    project_id = project.id
    session.delete(project)
    session.commit()  # the rows first: a failed commit leaves the files they still name
    store.delete_prefix(keys.project_prefix(project_id))
