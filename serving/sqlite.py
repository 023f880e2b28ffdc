"""A small SQLite file the server owns (API keys, conversations): created on first use, readable by its owner
only, WAL mode, one connection shared by the server's threads behind a lock."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path


class SqliteFile:
    SCHEMA: tuple[str, ...] = ()
    """CREATE TABLE IF NOT EXISTS statements, run when the file is opened."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            if new:
                os.chmod(self.path, 0o600)
            self._conn.execute("PRAGMA journal_mode=WAL")
            for ddl in self.SCHEMA:
                self._conn.execute(ddl)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
