"""Read and validate chat datasets: OpenAI `messages` or alpaca (`instruction`/`input`/`output`) JSONL.

Every defect is reported as `file:line: reason` so the user can fix the line.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from training.errors import BadDataset, NoExamples

ROLES = ("system", "user", "assistant")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows atomically (temp file + rename): a crash never leaves a half-written dataset."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def to_messages(record: dict, where: str) -> list[dict]:
    """Convert one record (messages or alpaca) to a validated message list.

    Raises:
        BadDataset: naming `where` (file:line) and the defect.
    """
    if not isinstance(record, dict):
        raise BadDataset(f"{where}: expected a JSON object, got {type(record).__name__}.")
    if "messages" in record:
        msgs = record["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise BadDataset(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects.")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise BadDataset(f"{where}: messages[{i}] needs 'role' and 'content'.")
            if m["role"] not in ROLES:
                raise BadDataset(
                    f"{where}: messages[{i}] has unknown role {m['role']!r}; use one of {', '.join(ROLES)}."
                )
            if not isinstance(m["content"], str) or not m["content"].strip():
                raise BadDataset(f"{where}: messages[{i}] ({m['role']}) has empty content.")
        if msgs[-1]["role"] != "assistant":
            raise BadDataset(f"{where}: the last message must be the assistant's answer (got {msgs[-1]['role']!r}).")
        return [{"role": m["role"], "content": m["content"]} for m in msgs]
    if "instruction" in record and "output" in record:
        prompt = str(record["instruction"]).strip()
        extra = str(record.get("input") or "").strip()
        if extra:
            prompt = f"{prompt}\n\n{extra}"
        answer = str(record["output"]).strip()
        if not prompt or not answer:
            raise BadDataset(f"{where}: empty 'instruction' or 'output'.")
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        if record.get("system"):
            msgs.insert(0, {"role": "system", "content": str(record["system"])})
        return msgs
    raise BadDataset(
        f"{where}: unknown record format (keys: {', '.join(sorted(record)) or 'none'}). "
        "Use {\"messages\": [...]} or {\"instruction\", \"input\", \"output\"}."
    )


def read_messages_file(path: str | Path) -> list[list[dict]]:
    """Read a JSONL chat dataset; return one message list per line.

    Raises:
        BadDataset: the file is missing, or a line is broken (names file:line).
        NoExamples: the file holds no records.
    """
    path = Path(path)
    if not path.is_file():
        raise BadDataset(f"{path}: no such file. Build one with `onboard data build` or pass your JSONL.")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadDataset(f"{path}:{n}: broken JSON ({e.msg} at column {e.colno}). Fix or delete the line.") from None
            rows.append(to_messages(record, f"{path}:{n}"))
    if not rows:
        raise NoExamples(f"{path}: no examples in the file.")
    return rows
