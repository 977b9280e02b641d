"""Liveness: no key needed, checks the database answers."""

from fastapi import APIRouter
from sqlalchemy import text

from tuneyard import __version__
from tuneyard.api.deps import SessionDep

router = APIRouter()


@router.get("/healthz", tags=["Health"])
def healthz(session: SessionDep) -> dict:
    session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__}
