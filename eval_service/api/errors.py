"""The ledger's domain errors. Ledger operations raise them; the app turns each into an HTTP
response with the error's status and `{"detail": ...}` body."""

from __future__ import annotations

from typing import Any


class LedgerFault(Exception):
    status = 400

    def __init__(self, detail: Any):
        super().__init__(str(detail))
        self.detail = detail


class NotFound(LedgerFault):
    status = 404


class Conflict(LedgerFault):
    """A state conflict: a stale attempt, or an operation the job's status does not allow."""

    status = 409


class Invalid(LedgerFault):
    """422 naming the offending field, in FastAPI's validation-error shape."""

    status = 422

    def __init__(self, field: str, msg: str, where: str = "body"):
        super().__init__([{"loc": [where, field], "msg": msg, "type": "value_error"}])
