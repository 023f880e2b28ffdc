"""Writing files so that a crash never leaves half of one: every file and folder Onboard publishes
(datasets, run records, model cards, indexes, models) goes through these helpers.

A file is written to a temporary sibling and renamed over the real name (`os.replace` is atomic on
one filesystem); a folder is built in `<name>.tmp` and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: str | Path, chunks: Iterable[str] | str, encoding: str = "utf-8") -> int:
    """Write `chunks` (a string, or strings written one after another) to `path` atomically.

    Returns:
        The number of chunks written (1 for a string).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding=encoding) as f:
            for n, chunk in enumerate([chunks] if isinstance(chunks, str) else chunks, 1):  # noqa: B007
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def atomic_write_json(path: str | Path, data, indent: int | None = 2) -> None:
    """`data` as UTF-8 JSON (Chinese kept readable; paths and other objects as strings), atomically."""
    atomic_write(path, json.dumps(data, indent=indent, ensure_ascii=False, default=str))


@contextmanager
def publish_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder (`<out>.tmp`) to write into; on success it replaces `out` by
    renames, so a crash midway never leaves a half-written folder under the real name, and the previous
    `out` is moved aside (`<out>.old`) until the new one is in place, so no kill loses both. On failure
    the temporary folder is removed; one left by a kill is removed by the next call."""
    out = Path(out)
    tmp, old = out.with_name(out.name + ".tmp"), out.with_name(out.name + ".old")
    if old.exists() and not out.exists():  # a kill between the two renames below: the previous one comes back
        old.rename(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)  # kept until the new one is in place: a kill here loses neither
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def publish_file(out: str | Path, suffix: str = ".partial") -> Iterator[Path]:
    """Yield a temporary sibling path for a file written by other code (a binary writer, a download) and
    checked in place (read back) before it is kept; on success it replaces `out` in one rename, on
    failure it is removed. The temporary name ends with `suffix` (some readers need the real extension)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}{suffix}")
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


def require_space(folder: str | Path, needed: int, what: str) -> None:
    """Refuse, before anything is written, to write `needed` bytes of `what` under `folder` when its
    filesystem has less free space (with 5 % to spare).

    Raises:
        DiskFull: naming the folder, the space needed and the space free.
    """
    from rag.errors import DiskFull

    folder = Path(folder)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if free < needed * 1.05:
        raise DiskFull(f"{folder}: writing {what} needs about {human_bytes(needed)} but only {human_bytes(free)} is "
                       "free there. Free some space or choose another folder; nothing was written.")


class JsonlAppender:
    """Append-only JSONL for resumable work (teacher and judge caches): each line is flushed and fsynced, so a
    crash keeps every finished record; a last line torn by an earlier crash is cut off first."""

    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                with path.open("r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        self._f = path.open("a", encoding="utf-8")

    def append(self, rec: dict) -> None:
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()
