"""The errors of `shared.client`, under one root as httpx does (import them from `shared.client`).

`DuetClientError` is every error the client raises: `LedgerUnavailable` (not reachable, or still
5xx/429 when the retry window ends: worth trying again later) or `LedgerError` (refused with a 4xx:
final; `AuthError` and `StaleAttempt` are kinds of it).
"""

from __future__ import annotations

from typing import Any


class DuetClientError(Exception):
    """Root of every error the ledger client raises: catch this for "the ledger call did not work"."""


class LedgerUnavailable(DuetClientError):
    """The ledger could not be reached, or kept answering 5xx/429, for the whole retry window.
    Not a refusal: the same request may succeed later, so callers spool it and replay it."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the last 5xx/429 status; None when nothing answered


class LedgerError(DuetClientError):
    """The ledger answered with an error status."""

    def __init__(self, status: int, detail: Any, method: str = "", url: str = ""):
        self.status, self.detail = status, detail
        super().__init__(f"{method} {url} -> {status}: {_render_detail(detail)}")


class AuthError(LedgerError):
    """401/403: token missing, wrong, or without the needed scope."""


class StaleAttempt(LedgerError):
    """409 on a worker write: the lease passed to a newer attempt; drop this attempt's work."""


def error_detail(error: LedgerError) -> str:
    """The server's message of `error` as one line; a validation error names each bad field."""
    return _render_detail(error.detail)


def _render_detail(detail: Any) -> str:
    if isinstance(detail, list):  # FastAPI validation errors: name the field
        parts = []
        for err in detail:
            if isinstance(err, dict):
                loc = ".".join(str(x) for x in err.get("loc", []) if x != "body")
                parts.append(f"{loc}: {err.get('msg', '')}")
            else:
                parts.append(str(err))
        return "; ".join(parts)
    return str(detail)
