"""Signed downloads: `GET /v1/files/<token>`; the token is the authorization."""

from fastapi import APIRouter, Request

from tuneyard.api.deps import SettingsDep, StoreDep
from tuneyard.errors import Forbidden, NotFound
from tuneyard.storage import ObjectNotFound
from tuneyard.storage.http import file_response
from tuneyard.storage.signing import ExpiredToken, TokenError, read_token

router = APIRouter(tags=["Files"])


@router.get("/v1/files/{token}")
def download(token: str, request: Request, store: StoreDep, settings: SettingsDep):
    try:
        claims = read_token(token, secret=settings.signing_secret())
    except ExpiredToken:
        raise Forbidden("download URL has expired; fetch the object again for a new one") from None
    except TokenError:
        raise Forbidden("download URL is invalid or has been tampered with") from None
    try:
        return file_response(store, key=claims.key, range_header=request.headers.get("range"),
                             filename=claims.filename, sha256=claims.sha256)
    except ObjectNotFound:
        raise NotFound("the file behind this URL no longer exists") from None
