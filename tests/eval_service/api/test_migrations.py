"""Alembic migrations own the ledger schema: a duet 0.1.0 database upgrades with every row kept, the
migrations build exactly the models' schema on SQLite and Postgres, and a newer database is refused."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session, SQLModel, select

from eval_service.api import migrate, models
from tests.fixtures.postgres import PostgresCluster

DATA = Path(__file__).parent / "data"
RELEASED_SQL = DATA / "duet_v0_1_0.sql"
REPO = Path(__file__).resolve().parents[3]


def load_released(path: Path) -> str:
    """A SQLite file holding duet 0.1.0's database fixture; returns its URL."""
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASED_SQL.read_text())
    conn.close()
    return f"sqlite:///{path}"


def all_rows(url: str, columns: dict[str, list[str]] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the released tables; only `columns` (table -> names) when given, so rows of a
    database from before a migration compare with the same rows after it added columns."""
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {}
        for t in sorted(migrate.RELEASED_TABLES):
            cols = ", ".join(f'"{c}"' for c in columns[t]) if columns else "*"
            out[t] = [tuple(r) for r in conn.execute(text(f"SELECT {cols} FROM {t} ORDER BY id"))]
    engine.dispose()
    return out


def column_names(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    insp = inspect(engine)
    out = {t: [c["name"] for c in insp.get_columns(t)] for t in sorted(migrate.RELEASED_TABLES)}
    engine.dispose()
    return out


def schema_of(url: str) -> dict[str, dict[str, Any]]:
    """Everything create_all and the migrations must agree on, as the database itself reports it."""
    engine = create_engine(url)
    insp = inspect(engine)
    out = {}
    for t in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        out[t] = {
            "columns": {
                c["name"]: (c["type"].compile(dialect=engine.dialect), c["nullable"])
                for c in insp.get_columns(t)
            },
            "pk": insp.get_pk_constraint(t)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]), repr(i.get("column_sorting")))
                for i in insp.get_indexes(t)
            ),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in insp.get_foreign_keys(t)
            ),
        }
    engine.dispose()
    return out


def create_all(url: str) -> None:
    engine = create_engine(url)
    SQLModel.metadata.create_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def new_db(request, tmp_path: Path) -> Callable[[], str]:
    """Makes fresh empty databases of one backend; returns their URLs."""
    if request.param == "sqlite":
        names = iter(range(100))
        return lambda: f"sqlite:///{tmp_path / f'db{next(names)}.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    made: list[str] = []

    def make() -> str:
        made.append(cluster.create_database())
        return made[-1]

    request.addfinalizer(lambda: [cluster.drop_database(u.rsplit("/", 1)[1]) for u in made])
    return make


# --- duet 0.1.0 databases ---------------------------------------------------------------------------


def test_released_database_upgrades_with_every_row_kept(tmp_path: Path):
    url = load_released(tmp_path / "old.db")
    released = column_names(url)
    before = all_rows(url, released)
    assert all(before[t] for t in migrate.RELEASED_TABLES), "the fixture fills every table"
    assert migrate.current_revision(url) is None  # made by create_all: no alembic_version yet

    migrate.upgrade(url)

    assert migrate.current_revision(url) == migrate.head_revision()
    assert all_rows(url, released) == before
    # The current models read the old rows (JSON, booleans, times, enums).
    engine = create_engine(url)
    with Session(engine) as s:
        runs = {r.name: r for r in s.exec(select(models.Run))}
        assert runs["qwen-math-sft"].config == {"lr": 1e-05, "max_steps": 200}
        jobs = {j.id: j for j in s.exec(select(models.EvalJob))}
        assert [jobs[i].status for i in sorted(jobs)] == ["done", "leased", "queued", "dead", "done"]
        assert jobs[2].lease_expires_at is not None and jobs[2].lease_expires_at.hour == 12
        samples = s.exec(select(models.SampleRow).order_by(models.SampleRow.id)).all()
        assert [x.correct for x in samples] == [True, True, True, False]
        assert samples[3].prompt == "Compute 2+2 with unicode: π ≈ 3.14"
        pending = s.exec(select(models.WandbOutbox).where(models.WandbOutbox.sent_at.is_(None))).all()  # type: ignore[union-attr]
        assert [o.payload["train/global_step"] for o in pending] == [0, 5]
        # 0.2: the new columns take their defaults, and `best`'s metric index is backfilled.
        checkpoints = s.exec(select(models.Checkpoint)).all()
        assert {(c.state, c.pinned, c.deleted_at) for c in checkpoints} == {("present", False, None)}
        assert {x.answer_correct for x in samples} == {None}
        indexed = s.exec(select(models.EvalMetric.result_id, models.EvalMetric.key, models.EvalMetric.value))
        assert sorted(indexed) == [(1, "accuracy", 0.412), (1, "format_rate", 0.98), (2, "accuracy", 0.3)]
    engine.dispose()

    at_head = all_rows(url)
    migrate.upgrade(url)  # every start upgrades: a database at head stays as it is
    assert all_rows(url) == at_head


def test_released_database_schema_is_what_the_initial_revision_builds(tmp_path: Path):
    old = load_released(tmp_path / "old.db")
    new = f"sqlite:///{tmp_path / 'new.db'}"
    migrate.upgrade(new, migrate.INITIAL_REVISION)
    assert schema_of(old) == schema_of(new)


def test_tables_that_are_not_a_duet_database_are_refused(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    with pytest.raises(migrate.MigrationError, match=r"has ledger tables \['runs'\] but not \['checkpoints'"):
        migrate.upgrade(url)
    assert migrate.current_revision(url) is None  # nothing was written


def test_pre_release_database_missing_columns_is_refused(tmp_path: Path):
    path = tmp_path / "pre.db"
    url = load_released(path)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN wandb_primary_task")
    conn.close()
    with pytest.raises(migrate.MigrationError, match=r"table runs lacks columns \['wandb_primary_task'\]"):
        migrate.upgrade(url)


# --- the migrations and the models agree --------------------------------------------------------------


def test_migrations_build_the_models_schema(new_db: Callable[[], str]):
    migrated, reference = new_db(), new_db()
    migrate.upgrade(migrated)
    create_all(reference)
    got, want = schema_of(migrated), schema_of(reference)
    assert set(got) == set(want) == set(SQLModel.metadata.tables)
    for table in want:
        assert got[table] == want[table], table


def test_models_changed_without_a_migration_fail_here(new_db: Callable[[], str]):
    """`alembic check`: autogenerate finds nothing between the migrations' head and models.py. A model
    change needs `python -m eval_service.api.migrate revision "..."`."""
    url = new_db()
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"models.py and the migrations differ; write a migration: {diff}"


# --- newer databases, concurrency, packaging ----------------------------------------------------------


def test_database_of_a_newer_duet_is_refused(new_db: Callable[[], str]):
    url = new_db()
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999_future'"))
    engine.dispose()
    message = f"database at revision 0999_future is newer than this duet (head {migrate.head_revision()}): upgrade duet"

    with pytest.raises(migrate.DatabaseTooNew) as err:
        migrate.check_not_newer(url)
    assert str(err.value) == message
    with pytest.raises(migrate.DatabaseTooNew, match="upgrade duet"):
        migrate.upgrade(url)
    assert migrate.current_revision(url) == "0999_future"  # left untouched


def test_replicas_starting_together_upgrade_once(new_db: Callable[[], str]):
    url = new_db()
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def replica() -> None:
        start.wait()
        try:
            migrate.upgrade(url)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=replica) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert migrate.current_revision(url) == migrate.head_revision()


def test_migrations_ship_in_the_wheel_and_run_from_it(tmp_path: Path):
    """A non-editable install has the migrations and upgrades with no alembic.ini or source tree."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", "*.db-*")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in ("shared", "eval_service", "trainer_service", "cli"):
        if (REPO / pkg).is_dir():
            shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("duet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("env.py", "script.py.mako", "versions/0001_initial.py"):
        assert f"eval_service/api/migrations/{f}" in names

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    db = tmp_path / "from-wheel.db"
    url = f"sqlite:///{db}"
    code = f"from eval_service.api import migrate; migrate.upgrade({url!r}); print(migrate.__file__)"
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(site)), "ran the wheel's copy, not the source tree"
    assert migrate.current_revision(f"sqlite:///{db}") == migrate.head_revision()
