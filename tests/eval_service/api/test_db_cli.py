"""`duet db upgrade` / `duet db current`, and `duet serve` refusing a database a newer duet upgraded:
one line on stderr, exit 1, no traceback (real CLI subprocesses, real SQLite files)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.fixtures.ledger import REPO


def _duet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_db_upgrade_then_current_reports_up_to_date(tmp_path: Path):
    db = tmp_path / "l.db"
    before = _duet("db", "current", "--db", str(db))
    assert before.returncode == 0 and "needs `duet db upgrade`" in before.stdout
    up = _duet("db", "upgrade", "--db", str(db))
    assert up.returncode == 0, up.stderr
    after = _duet("db", "current", "--db", str(db))
    assert after.returncode == 0 and "up to date" in after.stdout
    assert "runs" in {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master")}


def test_serve_refuses_a_database_of_a_newer_duet_with_one_line(tmp_path: Path):
    db = tmp_path / "l.db"
    assert _duet("db", "upgrade", "--db", str(db)).returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("update alembic_version set version_num = '9999'")
    out = _duet("serve", "--db", str(db), "--port", "1")
    assert out.returncode == 1
    assert "newer than this duet" in out.stderr and "upgrade duet" in out.stderr
    assert "Traceback" not in out.stderr
    current = _duet("db", "current", "--db", str(db))
    assert "newer than this duet" in current.stdout
