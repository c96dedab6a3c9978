"""Alembic environment of the ledger. Run through eval_service.api.migrate, which hands over an open
connection (config.attributes["connection"]) or a URL (main option sqlalchemy.url); no alembic.ini."""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import TypeDecorator, create_engine
from sqlmodel import SQLModel

from eval_service.api import models  # noqa: F401  (registers the tables: the target of autogenerate)

config = context.config


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Write a column's storage type, never the app's Python wrapper (AutoString, UTCDateTime), so
    a revision keeps working whatever later happens to models.py."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


OPTIONS: dict[str, Any] = {
    "target_metadata": SQLModel.metadata,
    "compare_type": True,
    # SQLite cannot ALTER most things: later revisions copy-and-move the table instead.
    "render_as_batch": True,
    "render_item": render_item,
}


def run_offline() -> None:
    """`--sql` mode: print the DDL instead of running it."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            context.configure(connection=conn, **OPTIONS)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
