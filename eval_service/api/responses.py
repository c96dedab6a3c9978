"""The error responses of the ledger's routes, for the OpenAPI document: every status a route can
answer besides its success is listed, with the `{"detail": ...}` body all of them share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel

from shared.fields import INT64_MAX


class ErrorBody(BaseModel):
    """Every error answer: a message, or (422) a list of `{loc, msg, type}` naming each bad field."""

    detail: Any


_WHY = {
    401: "missing or invalid API token",
    403: "the route needs the admin token",
    404: "no such run, job or checkpoint",
    409: "a stale attempt, or an operation the job's status does not allow",
    413: "request body larger than DUET_MAX_BODY_BYTES",
    422: "a request field is invalid (the detail names it)",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router that can answer each of `codes`."""
    return {code: {"model": ErrorBody, "description": _WHY[code]} for code in codes}


# Path and query ids are bounded like body ids: a number past int64 is a 422, never a 500.
JobId = Annotated[int, Path(ge=0, le=INT64_MAX)]
CheckpointIdQuery = Annotated[int, Query(ge=0, le=INT64_MAX)]
