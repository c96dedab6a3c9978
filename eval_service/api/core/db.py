"""Engines and transactions.

SQLite runs in WAL mode with a busy timeout and foreign keys on. Writes go through one engine
whose single pooled connection opens every transaction with BEGIN IMMEDIATE, so a write never
upgrades a read lock half-way (the usual source of "database is locked") and writes inside this
process queue up on the pool instead of on SQLite. Reads use a second engine (WAL snapshots).
Any other SQLAlchemy URL (e.g. Postgres) works with default transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from eval_service.api.core.config import ServerSettings


def _sqlite_file(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _make_engine(settings: ServerSettings, *, writer: bool) -> Engine:
    url = settings.db_url
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": settings.sqlite_busy_timeout_ms / 1000},
        pool_size=1 if writer else 8,
        max_overflow=0,
        pool_timeout=120,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (pysqlite's is deferred)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
        cur.close()

    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """The two engines of one ledger database and the transaction helpers routes use."""

    def __init__(self, settings: ServerSettings):
        self.settings = settings
        path = _sqlite_file(settings.db_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.is_sqlite = make_url(settings.db_url).get_backend_name() == "sqlite"
        self.writer = _make_engine(settings, writer=True)
        self.reader = _make_engine(settings, writer=False) if self.is_sqlite else self.writer

    def create_all(self) -> None:
        """The same as migrate() (the name older callers know)."""
        self.migrate()

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    def migrate(self) -> None:
        """Bring the schema to this duet's head (Alembic); raises migrate.DatabaseTooNew for a
        database a newer duet has upgraded, migrate.MigrationError for one it cannot upgrade."""
        from eval_service.api import migrate, models  # noqa: F401  (models registers the tables)

        migrate.upgrade(self.settings.db_url)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any exception."""
        with Session(self.writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.reader, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()
