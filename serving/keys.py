"""API keys, stored hashed in SQLite, each with its own rate limits.

    store = KeyStore(Workspace(ws).keys_file)
    key, secret = store.create("support-site", rpm=60, tpm=100_000)   # the secret is shown once, never stored
    store.find(secret)                                                # -> key (None for a wrong or revoked one)
    store.revoke(key.id)

A key is `onb-` and 43 random URL-safe characters (256 bits), so a plain SHA-256 of it is a safe thing to
store (a slow password hash guards guessable secrets; these are not). Listing shows a key's id, name and
first characters, never the secret. Once the store holds any key, revoked ones included, the server asks
every request but the health checks for one: revoking the last key does not open the server again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from serving.errors import BadSetting
from serving.sqlite import SqliteFile

PREFIX = "onb-"
_SCHEMA = """CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, shown TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL, revoked REAL, rpm INTEGER, tpm INTEGER)"""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    shown: str
    """The secret's first characters, e.g. `onb-Xy12…`: enough to tell keys apart in a list."""
    created: float
    revoked: float | None
    rpm: int | None
    """Requests per minute this key may make (None: no limit)."""
    tpm: int | None
    """Tokens (prompt + completion, or embedded) per minute this key may use (None: no limit)."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore(SqliteFile):
    """The keys in one SQLite file (created on the first key, readable by its owner only)."""

    SCHEMA = (_SCHEMA,)

    def required(self) -> bool:
        """Whether requests need a key: the store holds any key (revoked ones too)."""
        if not self.path.exists():
            return False
        with self._lock:
            return self._db().execute("SELECT 1 FROM keys LIMIT 1").fetchone() is not None

    def create(self, name: str, rpm: int | None = None, tpm: int | None = None) -> tuple[ApiKey, str]:
        """A new key and its secret (shown to the user once; only its hash is kept).

        Raises:
            BadSetting: an empty name, or a limit below 1.
        """
        if not name.strip():
            raise BadSetting("a key needs a name that says who uses it, e.g. `onboard keys create support-site`.")
        for what, v in (("--rpm", rpm), ("--tpm", tpm)):
            if v is not None and v < 1:
                raise BadSetting(f"{what} must be at least 1 (got {v}); leave it out for no limit.")
        secret = PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(id=secrets.token_hex(4), name=name.strip(), shown=secret[:8] + "…", created=time.time(),
                     revoked=None, rpm=rpm, tpm=tpm)
        with self._lock:
            self._db().execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               (key.id, key.name, key.shown, _hash(secret), key.created, None, rpm, tpm))
        return key, secret

    def list(self) -> list[ApiKey]:
        """Every key, oldest first, revoked ones included."""
        if not self.path.exists():
            return []
        with self._lock:
            rows = self._db().execute(
                "SELECT id, name, shown, created, revoked, rpm, tpm FROM keys ORDER BY created").fetchall()
        return [ApiKey(*r) for r in rows]

    def find(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, or None."""
        if not secret.startswith(PREFIX) or not self.path.exists():
            return None
        with self._lock:
            row = self._db().execute("SELECT id, name, shown, created, revoked, rpm, tpm FROM keys WHERE hash = ? "
                                     "AND revoked IS NULL", (_hash(secret),)).fetchone()
        return ApiKey(*row) if row else None

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by its id (from `list`); revoking a revoked key changes nothing.

        Raises:
            BadSetting: no key has that id.
        """
        with self._lock:
            db = self._db() if self.path.exists() else None
            if db is not None:
                db.execute("UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id))
                row = db.execute("SELECT id, name, shown, created, revoked, rpm, tpm FROM keys WHERE id = ?",
                                 (key_id,)).fetchone()
            else:
                row = None
        if row is None:
            raise BadSetting(f"no key with id {key_id!r} in {self.path}; `onboard keys list` shows the ids.")
        return ApiKey(*row)
