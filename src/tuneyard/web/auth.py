"""Who is signed in, and the CSRF check every state-changing request passes.

Pages take `WebUser` (a signed-in user, else a redirect to the sign-in page);
POSTs take `CsrfUser`, which also requires the session's CSRF token (a form
field or the `X-CSRF-Token` header htmx and our script send) and refuses a
foreign `Origin`. The SameSite=Strict cookie already keeps other sites'
requests unauthenticated; the token is the second, independent lock.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tuneyard.api.deps import SessionDep, plausible_id
from tuneyard.errors import Forbidden
from tuneyard.services.projects import get_project
from tuneyard.tables import ApiKey, Project, User
from tuneyard.web import session as cookies

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


class SignInRequired(Exception):
    """No valid session: pages redirect to /login, other requests get a 401."""


@dataclass
class Viewer:
    user: User
    session: cookies.WebSession

    @property
    def csrf(self) -> str:
        return self.session.csrf


def read_session(request: Request) -> cookies.WebSession | None:
    secret = request.app.state.settings.signing_secret()
    return cookies.load(request.cookies.get(cookies.COOKIE), secret=secret)


def viewer_of(request: Request, db: Session) -> Viewer | None:
    web = read_session(request)
    if web is None:
        return None
    key = db.get(ApiKey, web.key_id)
    if key is None or key.revoked_at is not None:
        return None
    return Viewer(user=key.user, session=web)


def web_user(request: Request, db: SessionDep) -> Viewer:
    viewer = viewer_of(request, db)
    if viewer is None:
        raise SignInRequired()
    request.state.viewer = viewer  # templates show who is signed in
    return viewer


WebUser = Annotated[Viewer, Depends(web_user)]


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


async def csrf_user(request: Request, viewer: WebUser) -> Viewer:
    if not same_origin(request):
        raise Forbidden("cross-site request refused")
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        token = (await request.form()).get(CSRF_FIELD)  # cached for the route to reuse
    if not isinstance(token, str) or not hmac.compare_digest(token, viewer.csrf):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")
    return viewer


CsrfUser = Annotated[Viewer, Depends(csrf_user)]


def project_of(project_id: str, db: SessionDep, viewer: WebUser) -> Project:
    """The path's project if the viewer owns it, else 404 (as the API scopes it)."""
    plausible_id(project_id, "project")
    return get_project(session=db, owner=viewer.user, project_id=project_id)


WebProject = Annotated[Project, Depends(project_of)]
