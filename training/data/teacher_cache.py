"""The teacher's resumable cache: one JSONL line per finished chunk, with the teacher's raw replies.

Why append-only and not `rag.io.atomic_write`: the cache is written while the run goes, one chunk at a
time, so that a crash or Ctrl-C loses only the chunks in flight. Rewriting the whole file atomically
after each chunk would be quadratic; appending a line, then flushing and fsyncing it, keeps every
finished chunk, and a line torn by a crash is skipped on reading (its chunk is simply redone).

A line is reused only for the same chunk text, model, prompt version and questions_per_chunk;
grounding is recomputed from the raw replies on every run, so changing it needs no new requests.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from rag.io import JsonlAppender

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Bumped when the cache line layout changes; lines of another version are ignored (redone)."""


def text_sha(text: str) -> str:
    """A short hash of a chunk's text: an edited chunk under the same id is a new chunk, generated again."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_cache(path: Path, model: str, version: str, questions_per_chunk: int) -> dict[tuple[str, str], dict]:
    """Finished chunks in the cache for this model, prompt version and questions_per_chunk, by (chunk id,
    text hash). Unreadable lines (a write torn by a crash) are skipped: their chunks are simply redone."""
    done: dict[tuple[str, str], dict] = {}
    if not path.exists():
        return done
    torn = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key = (rec["chunk_id"], rec["text_sha"])
            same = (rec["v"], rec["model"], rec["prompt_version"], rec["questions_per_chunk"]) == (
                CACHE_VERSION, model, version, questions_per_chunk)
        except (json.JSONDecodeError, KeyError, TypeError):
            torn += 1
            continue
        if same:
            done[key] = rec
    if torn:
        log.warning("%s: skipped %d unreadable line(s), left by an interrupted run; those chunks are redone", path, torn)
    return done


class CacheWriter(JsonlAppender):
    """Append-only JSONL; each line is flushed and fsynced so a crash keeps every finished chunk (a torn last
    line is cut off)."""
