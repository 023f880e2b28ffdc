"""Dataset records: detect their format, check them, convert them to one canonical shape and back.

Record formats a user file may use (one per file; any record may carry a "meta" object, kept as is):

    messages             {"messages": [{"role": "system" | "user" | "assistant", "content": str}, ...]}
    alpaca               {"instruction": str, "input": str, "output": str, "system": str (optional)}
    sharegpt             {"conversations": [{"from": "human" | "gpt" | "system", "value": str}, ...]}
    preference           {"prompt": str, "chosen": str, "rejected": str}
    preference-messages  {"prompt": [message, ...], "chosen": [message, ...], "rejected": [message, ...]}
    text                 {"text": str}

Canonical shapes (what training reads): chat `{"messages": [...]}` for the first three,
TRL's conversational preference `{"prompt": [...], "chosen": [...], "rejected": [...]}` for the two
preference formats, and `{"text": str}`. `record_kind`, `record_strings` and `map_strings` walk them.

Files: JSONL (one object per line), a `.json` array of objects, or a `.txt` file (one text record
per paragraph). Every defect is reported as `file:line: reason` so the user can fix the line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from itertools import chain
from pathlib import Path

from rag.io import atomic_write
from training.errors import BadConfig, BadDataset, BadRecord

ROLES = ("system", "user", "assistant")
PAIR_KEYS = ("prompt", "chosen", "rejected")  # a preference record's keys, in every format
CHAT_FORMATS = ("messages", "alpaca", "sharegpt")
PREFERENCE_FORMATS = ("preference", "preference-messages")
FORMATS = CHAT_FORMATS + PREFERENCE_FORMATS + ("text",)
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_TO_SHAREGPT = {"user": "human", "assistant": "gpt", "system": "system"}
_ACCEPTED = (
    '{"messages": [...]}, alpaca {"instruction", "input", "output"}, sharegpt {"conversations": [...]}, '
    'preference {"prompt", "chosen", "rejected"} or {"text": ...}'
)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks: run records pin the exact dataset they trained on."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- writing files


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows as JSONL, atomically (a crash never leaves half a dataset). Returns the number of rows."""
    return atomic_write(path, (json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_json_array(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows as a JSON array, one record per line, atomically. Returns the number of rows."""
    items = ((",\n" if i else "\n") + json.dumps(r, ensure_ascii=False) for i, r in enumerate(rows))
    return atomic_write(path, chain(["["], items, ["\n]\n"])) - 2  # the head and tail are not rows


# ---------------------------------------------------------------- records: detect and check


def detect_format(record: object) -> str | None:
    """Name the format a record is written in, from its keys alone (it may still be malformed).

    Returns:
        One of FORMATS, or None when no format's keys are present (or it is not an object).
    """
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "chosen" in record or "rejected" in record:
        parts = [record.get(k) for k in PAIR_KEYS]
        return "preference-messages" if any(isinstance(p, list) for p in parts) else "preference"
    if "instruction" in record or "output" in record:
        return "alpaca"
    if "text" in record:
        return "text"
    return None


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _content(value: object, where: str, name: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRecord(where, "empty-content", f"{name} has empty content.")
    if not isinstance(value, str):
        raise BadRecord(where, "missing-field", f"{name} must be a string (got {_json_type(value)}).")
    return value


def _text(value: object, where: str, name: str) -> str:
    """A string field of alpaca/preference records; numbers are read as text (as before)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _content(value, where, name)


def _optional_text(record: dict, key: str, where: str) -> str:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value or ""
    return _text(value, where, f"'{key}'")


def _require(record: dict, keys: tuple[str, ...], where: str, fmt: str) -> None:
    for key in keys:
        if key not in record:
            raise BadRecord(where, "missing-field", f"missing '{key}' ({fmt} records need {', '.join(keys)}).")


def _messages(value: object, where: str, label: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise BadRecord(where, "missing-field", f"'{label}' must be a non-empty list of {{role, content}} objects.")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise BadRecord(where, "missing-field", f"{label}[{i}] needs 'role' and 'content'.")
        if m["role"] not in ROLES:
            raise BadRecord(
                where, "unknown-role", f"{label}[{i}] has unknown role {m['role']!r}; use one of {', '.join(ROLES)}."
            )
        out.append({"role": m["role"], "content": _content(m["content"], where, f"{label}[{i}] ({m['role']})")})
    return out


def _require_answer(msgs: list[dict], where: str, label: str) -> None:
    if msgs[-1]["role"] != "assistant":
        none = "" if any(m["role"] == "assistant" for m in msgs) else "no assistant turn; "
        raise BadRecord(
            where, "no-assistant",
            f"'{label}': {none}the last message must be the assistant's answer (got {msgs[-1]['role']!r}).",
        )


def _canon_messages(record: dict, where: str) -> dict:
    msgs = _messages(record["messages"], where, "messages")
    _require_answer(msgs, where, "messages")
    return {"messages": msgs}


def _canon_sharegpt(record: dict, where: str) -> dict:
    turns = record["conversations"]
    if not isinstance(turns, list) or not turns:
        raise BadRecord(where, "missing-field", "'conversations' must be a non-empty list of {from, value} objects.")
    msgs = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or "from" not in t or "value" not in t:
            raise BadRecord(where, "missing-field", f"conversations[{i}] needs 'from' and 'value'.")
        role = SHAREGPT_ROLES.get(t["from"]) if isinstance(t["from"], str) else None
        if role is None:
            raise BadRecord(
                where, "unknown-role", f"conversations[{i}] has unknown role {t['from']!r}; use human, gpt or system."
            )
        msgs.append({"role": role, "content": _content(t["value"], where, f"conversations[{i}] ({t['from']})")})
    _require_answer(msgs, where, "conversations")
    return {"messages": msgs}


def _canon_alpaca(record: dict, where: str) -> dict:
    _require(record, ("instruction", "output"), where, "alpaca")
    instruction = _text(record["instruction"], where, "'instruction'")
    answer = _text(record["output"], where, "'output'")
    extra = _optional_text(record, "input", where)
    system = _optional_text(record, "system", where)
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    if system.strip():
        msgs.insert(0, {"role": "system", "content": system})
    return {"messages": msgs}


def _pair(prompt: list[dict], chosen: list[dict], rejected: list[dict], where: str) -> dict:
    if chosen == rejected:
        raise BadRecord(
            where, "duplicate", "'chosen' and 'rejected' are the same answer; a preference pair needs two different ones."
        )
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _canon_preference(record: dict, where: str) -> dict:
    _require(record, PAIR_KEYS, where, "preference")
    prompt = [{"role": "user", "content": _text(record["prompt"], where, "'prompt'")}]
    chosen = [{"role": "assistant", "content": _text(record["chosen"], where, "'chosen'")}]
    rejected = [{"role": "assistant", "content": _text(record["rejected"], where, "'rejected'")}]
    return _pair(prompt, chosen, rejected, where)


def _canon_preference_messages(record: dict, where: str) -> dict:
    _require(record, PAIR_KEYS, where, "preference")
    prompt = _messages(record["prompt"], where, "prompt")
    chosen = _messages(record["chosen"], where, "chosen")
    rejected = _messages(record["rejected"], where, "rejected")
    _require_answer(chosen, where, "chosen")
    _require_answer(rejected, where, "rejected")
    return _pair(prompt, chosen, rejected, where)


def _canon_text(record: dict, where: str) -> dict:
    return {"text": _content(record["text"], where, "'text'")}


_TO_CANONICAL: dict[str, Callable[[dict, str], dict]] = {
    "messages": _canon_messages, "alpaca": _canon_alpaca, "sharegpt": _canon_sharegpt,
    "preference": _canon_preference, "preference-messages": _canon_preference_messages, "text": _canon_text,
}


def to_canonical(record: object, where: str) -> dict:
    """Check one record and return it in its canonical shape (chat, preference or text), `meta` kept.

    Raises:
        BadRecord: (a BadDataset) naming `where` (file:line), the defect's `code` and what to fix.
    """
    if not isinstance(record, dict):
        raise BadRecord(where, "not-object", f"expected a JSON object, got {_json_type(record)}.")
    fmt = detect_format(record)
    if fmt is None:
        keys = ", ".join(sorted(record)) or "none"
        raise BadRecord(where, "unknown-format", f"unknown record format (keys: {keys}). Use {_ACCEPTED}.")
    canon = _TO_CANONICAL[fmt](record, where)
    if "meta" in record:
        if not isinstance(record["meta"], dict):
            raise BadRecord(where, "missing-field", f"'meta' must be a JSON object (got {_json_type(record['meta'])}).")
        canon["meta"] = record["meta"]
    return canon


def to_messages(record: dict, where: str) -> list[dict]:
    """Convert one chat record (messages, alpaca or sharegpt) to a validated message list.

    Raises:
        BadDataset: naming `where` (file:line) and the defect.
    """
    canon = to_canonical(record, where)
    if "messages" not in canon:
        raise BadRecord(
            where, "mixed-format",
            f"a {detect_format(record)} record, not a chat example; a chat dataset holds messages, alpaca or sharegpt records.",
        )
    return canon["messages"]


# ---------------------------------------------------------------- canonical -> a format


def _copy(msgs: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


def _as_alpaca(record: dict) -> dict:
    msgs = record["messages"]
    body = msgs[1:] if msgs[0]["role"] == "system" else msgs
    roles = [m["role"] for m in body]
    if roles != ["user", "assistant"]:
        raise BadDataset(
            f"this conversation has {len(body)} turns ({', '.join(roles)}); alpaca holds one question and its "
            "answer. Keep it as messages or sharegpt."
        )
    instruction, _, extra = body[0]["content"].partition("\n\n")
    out = {"instruction": instruction, "input": extra, "output": body[1]["content"]}
    if body is not msgs:
        out["system"] = msgs[0]["content"]
    return out


def _as_preference(record: dict) -> dict:
    shape = [[m["role"] for m in record[k]] for k in PAIR_KEYS]
    if shape != [["user"], ["assistant"], ["assistant"]]:
        raise BadDataset(
            "this pair has a system prompt or several turns; the string preference format holds one prompt and "
            "two answers. Keep it as preference-messages."
        )
    return {k: record[k][0]["content"] for k in PAIR_KEYS}


_FROM_CANONICAL: dict[str, Callable[[dict], dict]] = {
    "messages": lambda r: {"messages": _copy(r["messages"])},
    "alpaca": _as_alpaca,
    "sharegpt": lambda r: {"conversations": [{"from": _TO_SHAREGPT[m["role"]], "value": m["content"]} for m in r["messages"]]},
    "preference": _as_preference,
    "preference-messages": lambda r: {k: _copy(r[k]) for k in PAIR_KEYS},
    "text": lambda r: {"text": r["text"]},
}


def from_canonical(record: dict, fmt: str) -> dict:
    """Write a canonical record (as `to_canonical` returns it) in format `fmt`; `meta` is kept.

    `from_canonical(to_canonical(r, where), fmt) == r` for a well-formed record `r` in format `fmt`
    written in that format's normal form: alpaca always has "input" ("" when there is none; the
    user turn is split back at its first blank line); sharegpt speaks human/gpt/system (user and
    assistant are read, then written as human/gpt); keys other than the format's own and "meta"
    are not kept.

    Raises:
        BadConfig: (a ValueError) `fmt` is not one of FORMATS.
        BadDataset: the record cannot be said in `fmt` (a multi-turn chat as alpaca, chat as text...).
    """
    if fmt not in FORMATS:
        raise BadConfig(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    have = "chat" if "messages" in record else "preference" if "chosen" in record else "text"
    if fmt not in {"chat": CHAT_FORMATS, "preference": PREFERENCE_FORMATS, "text": ("text",)}[have]:
        raise BadDataset(f"a {have} record cannot be written as {fmt}.")
    out = _FROM_CANONICAL[fmt](record)
    if "meta" in record:
        out["meta"] = record["meta"]
    return out


# ---------------------------------------------------------------- canonical records: kind and text fields


def record_kind(record: object, index: int) -> str:
    """The canonical shape of a record: 'text', 'chat' or 'preference' (shapes in the module docstring).

    Lenient where `to_canonical` is strict (any role, empty content): cleaning drops and counts such
    records rather than refusing the dataset. Only what would break code walking the record is refused.

    Raises:
        BadDataset: the record has none of the three shapes, or a message is malformed (names the index).
    """
    if not isinstance(record, dict):
        raise BadDataset(f"record {index}: expected a JSON object, got {type(record).__name__}.")
    if not isinstance(record.get("meta", {}), dict):
        raise BadDataset(f"record {index}: 'meta' must be an object (got {type(record['meta']).__name__}).")
    if "text" in record:
        if not isinstance(record["text"], str):
            raise BadDataset(f"record {index}: 'text' must be a string.")
        return "text"
    if "messages" in record:
        _check_messages(record["messages"], f"record {index}: 'messages'")
        return "chat"
    if set(PAIR_KEYS) <= record.keys():
        for key in PAIR_KEYS:
            _check_messages(record[key], f"record {index}: '{key}'")
        return "preference"
    raise BadDataset(
        f"record {index}: unknown shape (keys: {', '.join(sorted(record)) or 'none'}). "
        'Use {"text": ...}, {"messages": [...]} or {"prompt": [...], "chosen": [...], "rejected": [...]}.'
    )


def _check_messages(msgs: object, where: str) -> None:
    if not isinstance(msgs, list):
        raise BadDataset(f"{where} must be a list of {{role, content}} objects.")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
            raise BadDataset(f"{where}[{i}] needs a 'role' and a string 'content'.")


def message_keys(kind: str) -> tuple[str, ...]:
    """The keys holding message lists in a record of this kind (none for text)."""
    return {"chat": ("messages",), "preference": PAIR_KEYS}.get(kind, ())


def record_strings(record: dict, kind: str) -> list[str]:
    """Every text string of a canonical record, system messages included, in order."""
    if kind == "text":
        return [record["text"]]
    return [m["content"] for key in message_keys(kind) for m in record[key]]


def map_strings(record: dict, kind: str, fn: Callable[[str], str]) -> dict:
    """A new record with `fn` applied to every text string; other keys (meta included) are shared."""
    out = dict(record)
    if kind == "text":
        out["text"] = fn(record["text"])
    for key in message_keys(kind):
        out[key] = [{**m, "content": fn(m["content"])} for m in record[key]]
    return out


def model_texts(record: dict, kind: str) -> list[str]:
    """What the model reads: the whole record; a preference record gives prompt+chosen and prompt+rejected."""
    if kind == "preference":
        prompt = [m["content"] for m in record["prompt"]]
        return ["\n".join(prompt + [m["content"] for m in record[k]]) for k in ("chosen", "rejected")]
    return ["\n".join(record_strings(record, kind))]
