"""`duet db`: the ledger database's schema (Alembic migrations).

    duet db upgrade [--db URL]   # bring the database to this duet's schema (the server also does at start)
    duet db current [--db URL]   # which revision the database is at, and this duet's head

The database is `--db` (a SQLAlchemy URL or a SQLite file path), else DUET_DB_URL, else the
server's default. Errors are one line on stderr with exit code 1.
"""

from __future__ import annotations

from typing import NoReturn

import typer

app = typer.Typer(help="The ledger database: schema upgrades.", no_args_is_help=True)

DbOpt = typer.Option(None, "--db", help="SQLite file or SQLAlchemy URL (default: DUET_DB_URL).")


def _fail(msg: str) -> NoReturn:
    typer.echo(f"duet: {msg}", err=True)
    raise typer.Exit(1)


def _url(db: str | None) -> str:
    from eval_service.api.core.config import ServerSettings
    from eval_service.api.serve import db_url

    return db_url(db) if db else ServerSettings().db_url


@app.command()
def upgrade(db: str = DbOpt) -> None:
    """Upgrade the database's schema to this duet's (an empty database gets the whole schema)."""
    from eval_service.api.core.config import ServerSettings
    from eval_service.api.core.db import Database
    from eval_service.api.migrate import MigrationError, head_revision

    url = _url(db)
    database = Database(ServerSettings(db_url=url))
    try:
        database.migrate()
    except MigrationError as e:
        _fail(str(e))
    finally:
        database.dispose()
    typer.echo(f"database at {head_revision()} (this duet's head)")


@app.command()
def current(db: str = DbOpt) -> None:
    """Print the database's schema revision and this duet's head revision."""
    from eval_service.api.migrate import (
        DatabaseTooNew,
        MigrationError,
        check_not_newer,
        current_revision,
        head_revision,
    )

    url, head = _url(db), head_revision()
    try:
        rev = current_revision(url)
        check_not_newer(url)
        state = "up to date" if rev == head else "needs `duet db upgrade`"
    except DatabaseTooNew as e:
        state = str(e)
    except MigrationError as e:
        _fail(str(e))
    typer.echo(
        f"database at {rev or 'none (empty, or made by duet 0.1.0)'}; this duet's head is {head}: {state}"
    )
