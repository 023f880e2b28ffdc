"""The customer-service conversations behind POST /chat, and the answers /feedback refers to, in SQLite.

    store = ChatStore(Workspace(ws).conversations_file)
    store.history("s-1")                                  # [{"role": "user", ...}, {"role": "assistant", ...}, ...]
    store.add("s-1", question, answer, response)          # one exchange, and the answer as served
    store.response("resp_…")                              # what feedback on that answer is recorded with
    add_feedback(feedback_file, record)                   # a line of training/data/feedback.py's format

An answer is kept with the prompt exactly as the model saw it (the system message with its retrieved context),
so a thumbs-down with a correction becomes a DPO pair on the served layout. Answers older than the retention
(days) are deleted when the server starts; the turns of a session go with them.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from serving.sqlite import SqliteFile

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS turns (session_id TEXT NOT NULL, n INTEGER NOT NULL, role TEXT NOT NULL,
       content TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (session_id, n))""",
    """CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, created REAL NOT NULL, session_id TEXT,
       model TEXT NOT NULL, messages TEXT NOT NULL, response TEXT NOT NULL, sources TEXT NOT NULL)""",
)


@dataclass(frozen=True)
class Served:
    """An answer as it was served: what feedback on it is recorded with."""

    id: str
    model: str
    messages: list[dict]
    """The prompt as the model saw it, retrieved context included."""
    response: str
    sources: list[str]
    """Chunk ids the answer was given with."""
    session_id: str | None = None


class ChatStore(SqliteFile):
    """Conversations and served answers in one SQLite file (customers' words: readable by its owner only)."""

    SCHEMA = _SCHEMA

    def new_session(self, owner: str = "") -> str:
        """A new conversation of `owner` (the API key's id; "" without keys); its id, unguessable."""
        session_id = f"s_{uuid.uuid4().hex}"
        with self._lock:
            self._db().execute("INSERT INTO sessions VALUES (?, ?, ?)", (session_id, owner, time.time()))
        return session_id

    def is_owner(self, session_id: str, owner: str = "") -> bool:
        """Whether `session_id` is a conversation this server started for `owner`: another key's conversation,
        or an id a client made up, is not continued (its history is not shown to whoever guesses it)."""
        with self._lock:
            row = self._db().execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None and row[0] == owner

    def history(self, session_id: str, limit: int | None = None) -> list[dict]:
        """The session's messages, oldest first (the last `limit` only)."""
        with self._lock:
            rows = self._db().execute("SELECT role, content FROM turns WHERE session_id = ? ORDER BY n DESC"
                                      + (" LIMIT ?" if limit is not None else ""),
                                      (session_id, limit) if limit is not None else (session_id,)).fetchall()
        return [{"role": r, "content": c} for r, c in reversed(rows)]

    def add(self, session_id: str, question: str, served: Served) -> None:
        """One exchange of a session, and the answer as served; written together or not at all."""
        now = time.time()
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                n = db.execute("SELECT COALESCE(MAX(n), -1) + 1 FROM turns WHERE session_id = ?",
                               (session_id,)).fetchone()[0]
                db.executemany("INSERT INTO turns VALUES (?, ?, ?, ?, ?)",
                               [(session_id, n, "user", question, now),
                                (session_id, n + 1, "assistant", served.response, now)])
                db.execute("INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (served.id, now, session_id, served.model, json.dumps(served.messages, ensure_ascii=False),
                            served.response, json.dumps(served.sources)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def response(self, response_id: str) -> Served | None:
        with self._lock:
            row = self._db().execute("SELECT id, model, messages, response, sources, session_id FROM responses "
                                     "WHERE id = ?", (response_id,)).fetchone()
        if row is None:
            return None
        return Served(row[0], row[1], json.loads(row[2]), row[3], json.loads(row[4]), row[5])

    def prune(self, days: float) -> int:
        """Delete answers and turns older than `days`; how many answers went."""
        cutoff = time.time() - days * 86400
        with self._lock:
            db = self._db()
            gone = db.execute("DELETE FROM responses WHERE created < ?", (cutoff,)).rowcount
            db.execute("DELETE FROM turns WHERE created < ?", (cutoff,))
            db.execute("DELETE FROM sessions WHERE created < ? AND id NOT IN (SELECT session_id FROM turns)", (cutoff,))
        return gone


_append_lock = threading.Lock()


def add_feedback(feedback_file: Path, record: dict) -> None:
    """Append one feedback record (a whole line, flushed to disk) to the file DPO data is built from."""
    feedback_file.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    with _append_lock:
        fd = os.open(feedback_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
