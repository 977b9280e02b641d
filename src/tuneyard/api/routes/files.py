"""Signed downloads: `GET /v1/files/<token>`; the token is the authorization.

On an S3 store the answer is a redirect to a presigned S3 URL valid for the
token's remaining lifetime (URLs handed out now are presigned already; this
keeps any `/v1/files/` URL working), so the bytes never pass through the API.
"""

import time

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse

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
        presign = getattr(store, "presigned_url", None)
        if presign is not None:
            store.size(claims.key)  # a deleted object is this route's 404, not S3's 403
            url = presign(claims.key, expires_in=claims.expires_at - int(time.time()),
                          filename=claims.filename)
            return RedirectResponse(url, status_code=307)
        return file_response(store, key=claims.key, range_header=request.headers.get("range"),
                             filename=claims.filename, sha256=claims.sha256)
    except ObjectNotFound:
        raise NotFound("the file behind this URL no longer exists") from None
