"""Schema migrations of the ledger database (Alembic), for SQLite and Postgres alike.

    upgrade(db_url)            # bring any duet database (or an empty one) to this duet's schema
    check_not_newer(db_url)    # DatabaseTooNew when a newer duet already upgraded it
    current_revision(db_url), head_revision()

The Alembic configuration is built here in code from the migrations/ package shipped inside duet, so
upgrades work from an installed wheel with no alembic.ini. A database made by duet 0.1.0 (tables from
`create_all`, no alembic_version table) is recognised and stamped at the initial revision first.

A new schema change: edit models.py, then `python -m eval_service.api.migrate revision "what changed"`
writes the next revision from the difference (check and trim it by hand), and the test suite fails
until the models and the migrations agree again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
INITIAL_REVISION = "0001"
# Tables of duet 0.1.0, the last schema made by create_all instead of a migration.
RELEASED_TABLES = frozenset(
    {"runs", "checkpoints", "eval_jobs", "eval_results", "samples", "train_metrics", "wandb_outbox"}
)
# Postgres: one upgrader at a time per database (several API replicas start together).
_PG_LOCK_KEY = 0x6475_6574_6D69_6772  # "duetmigr"


class MigrationError(RuntimeError):
    """The database cannot be brought to this duet's schema; the message says why."""


class DatabaseTooNew(MigrationError):
    """The database was upgraded by a newer duet than this one."""


def alembic_config(db_url: str | None = None, connection: Connection | None = None) -> Config:
    """The Alembic configuration of the ledger (what alembic.ini would hold)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if db_url is not None:
        # ConfigParser would read a '%' in a password as interpolation.
        cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this duet knows."""
    head = _script().get_current_head()
    if head is None:
        raise MigrationError(f"no migrations found in {MIGRATIONS_DIR}: broken duet install")
    return head


def _engine(db_url: str) -> Engine:
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, poolclass=StaticPool)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=StaticPool, connect_args={"timeout": 60})

    # pysqlite would run DDL outside any transaction; BEGIN IMMEDIATE makes the whole upgrade one
    # transaction (all or nothing) and queues concurrent upgraders on SQLite's write lock.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def _transaction(db_url: str, *, lock: bool) -> Iterator[Connection]:
    engine = _engine(db_url)
    try:
        with engine.begin() as conn:
            if lock and conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            yield conn
    finally:
        engine.dispose()


def _heads(conn: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(conn).get_current_heads()


def _check_known(conn: Connection) -> None:
    script = _script()
    known = {s.revision for s in script.walk_revisions()}
    for rev in _heads(conn):
        if rev not in known:
            raise DatabaseTooNew(
                f"database at revision {rev} is newer than this duet (head {head_revision()}): upgrade duet"
            )


def current_revision(db_url: str) -> str | None:
    """The database's revision; None for an empty database or one made by duet 0.1.0."""
    with _transaction(db_url, lock=False) as conn:
        heads = _heads(conn)
    if len(heads) > 1:
        raise MigrationError(f"database has several revisions {heads}: not a duet database")
    return heads[0] if heads else None


def check_not_newer(db_url: str) -> None:
    """Raise DatabaseTooNew when the database carries a revision this duet does not know."""
    with _transaction(db_url, lock=False) as conn:
        _check_known(conn)


def _initial_columns() -> dict[str, set[str]]:
    """Columns of each table at the initial revision, read back from a scratch in-memory database."""
    with _transaction("sqlite://", lock=False) as conn:
        command.upgrade(alembic_config(connection=conn), INITIAL_REVISION)
        insp = inspect(conn)
        return {t: {c["name"] for c in insp.get_columns(t)} for t in RELEASED_TABLES}


def _adopt_unversioned(conn: Connection) -> None:
    """Stamp a duet 0.1.0 database at the initial revision; refuse tables that are not one."""
    insp = inspect(conn)
    tables = set(insp.get_table_names())
    if "alembic_version" in tables or not tables & RELEASED_TABLES:
        return  # already under migrations, or empty (foreign tables are none of our business)
    missing = RELEASED_TABLES - tables
    if missing:
        raise MigrationError(
            f"database has ledger tables {sorted(tables & RELEASED_TABLES)} but not {sorted(missing)}: "
            "not a duet database this version can upgrade"
        )
    for table, columns in _initial_columns().items():
        have = {c["name"] for c in insp.get_columns(table)}
        if not columns <= have:
            raise MigrationError(
                f"table {table} lacks columns {sorted(columns - have)} of duet 0.1.0: "
                "a pre-release database this version cannot upgrade"
            )
    command.stamp(alembic_config(connection=conn), INITIAL_REVISION)


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (default: this duet's head) in one transaction.

    Raises DatabaseTooNew for a database a newer duet has upgraded, MigrationError for tables that
    are not a duet database. Safe to call from several processes at once and on every start.
    """
    with _transaction(db_url, lock=True) as conn:
        _check_known(conn)
        _adopt_unversioned(conn)
        command.upgrade(alembic_config(connection=conn), revision)


def new_revision(message: str) -> list[Path]:
    """Write the next revision from the difference between models.py and the migrations' head."""
    # Autogenerate compares against a database at head: a scratch in-memory SQLite one.
    with _transaction("sqlite://", lock=False) as conn:
        cfg = alembic_config(connection=conn)
        command.upgrade(cfg, "head")
        next_id = f"{int(head_revision()) + 1:04d}"
        scripts = command.revision(cfg, message=message, autogenerate=True, rev_id=next_id)
    scripts = scripts if isinstance(scripts, list) else [scripts]
    return [Path(s.path) for s in scripts if s is not None]


def main(argv: list[str]) -> int:
    usage = "usage: python -m eval_service.api.migrate {upgrade DB_URL | current DB_URL | revision MESSAGE}"
    if len(argv) != 2 or argv[0] not in ("upgrade", "current", "revision"):
        print(usage, file=sys.stderr)
        return 2
    action, arg = argv
    if action == "upgrade":
        upgrade(arg)
        print(f"database at {head_revision()}")
    elif action == "current":
        print(f"database at {current_revision(arg)}; this duet's head is {head_revision()}")
    else:
        for path in new_revision(arg):
            print(f"wrote {path}: review it, then run the tests")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
