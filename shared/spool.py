"""A durable local outbox for writes that must reach the ledger even if it is down right now.

Trainer (train metrics) and worker (job results) append here first when a POST fails and replay
in order once the ledger answers. Stored in a small SQLite file: appends are atomic and survive a
SIGKILL, and a record leaves the spool only when `ack`ed after the ledger accepted it. Replays are
safe because every ledger write is idempotent (unique keys, attempt fencing).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SpoolRecord:
    id: str
    kind: str
    payload: dict[str, Any]


class Spool:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
            "payload TEXT NOT NULL)"
        )

    def append(self, kind: str, payload: dict[str, Any]) -> str:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO spool (kind, payload) VALUES (?, ?)", (kind, json.dumps(payload))
            )
            return str(cur.lastrowid)

    def pending(self, kind: str | None = None) -> list[SpoolRecord]:
        """Records not yet acknowledged, oldest first."""
        sql, args = "SELECT id, kind, payload FROM spool", ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [SpoolRecord(str(i), k, json.loads(p)) for i, k, p in rows]

    def ack(self, record_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM spool WHERE id = ?", (int(record_id),))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
