"""Paged lists: `?limit=` (default DEFAULT_LIMIT, at most MAX_LIMIT) and `?after=<id>`.

The Emissary contract's lists are plain JSON arrays, so a page stays an array;
when more follow, the response says where the next page starts in
`X-Next-After` (the last id of this page) and in a `Link: <…>; rel="next"`
header. Rows are ordered by id, so the cursor is stable while rows are added
or deleted. A client that knows nothing of pages gets the first DEFAULT_LIMIT
rows, which is everything for any ordinary project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
NEXT_HEADER = "X-Next-After"

Row = TypeVar("Row")


@dataclass
class Page:
    limit: int
    after: str | None
    request: Request
    response: Response

    @property
    def fetch(self) -> int:
        """Rows to read: one more than the page, to know whether another follows."""
        return self.limit + 1

    def of(self, rows: Sequence[Row]) -> list[Row]:
        """The page's rows out of `fetch` rows read; sets the next-page headers."""
        rows = list(rows)
        if len(rows) > self.limit:
            rows = rows[: self.limit]
            last = rows[-1].id
            query = dict(self.request.query_params)
            query.update(after=last, limit=str(self.limit))
            self.response.headers[NEXT_HEADER] = last
            self.response.headers["Link"] = \
                f'<{self.request.url.path}?{urlencode(query)}>; rel="next"'
        return rows


def page(
    request: Request, response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=(
        f"Most items in this page (default {DEFAULT_LIMIT}); when more follow, the "
        f"{NEXT_HEADER} header holds the `after` for the next page."))] = DEFAULT_LIMIT,
    after: Annotated[str | None, Query(min_length=1, max_length=64, description=(
        "Start after this id (the previous page's X-Next-After)."))] = None,
) -> Page:
    return Page(limit=limit, after=after, request=request, response=response)


PageDep = Annotated[Page, Depends(page)]
