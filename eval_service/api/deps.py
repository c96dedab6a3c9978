"""Request dependencies: the database, the settings and the two token scopes."""

from __future__ import annotations

import secrets
from typing import Literal

from fastapi import HTTPException, Request

from eval_service.api.core.config import ServerSettings
from eval_service.api.core.db import Database

Role = Literal["admin", "user"]


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def _role(request: Request) -> Role | None:
    settings: ServerSettings = request.app.state.settings
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    token_b = token.strip().encode()
    # compare against both so the timing does not reveal which one nearly matched
    is_admin = secrets.compare_digest(token_b, settings.admin_token.encode())
    is_user = secrets.compare_digest(token_b, settings.api_token.encode())
    return "admin" if is_admin else "user" if is_user else None


def _unauthorized(request: Request) -> HTTPException:
    has = bool(request.headers.get("authorization"))
    msg = "invalid API token" if has else "missing API token (send `Authorization: Bearer <DUET_API_TOKEN>`)"
    return HTTPException(401, msg, headers={"WWW-Authenticate": "Bearer"})


def require_writer(request: Request) -> Role:
    role = _role(request)
    if role is None:
        raise _unauthorized(request)
    return role


def require_admin(request: Request) -> Role:
    role = require_writer(request)
    if role != "admin":
        raise HTTPException(403, "this route needs the admin token (DUET_ADMIN_TOKEN)")
    return role


def require_reader(request: Request) -> Role | None:
    if request.app.state.settings.read_auth:
        return require_writer(request)
    return None
