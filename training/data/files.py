"""Read dataset files: JSONL, a `.json` array of records, or `.txt` paragraphs.

Each record comes back with the line it starts on, so every defect can be reported as
`file:line: reason`; a file that is not a dataset at all is refused with one message that says what
it looks like and what to do. Record formats and their checks live in training/data/formats.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

from training.data.formats import _json_type, to_canonical, to_messages
from training.errors import BadDataset, BadRecord, NoExamples

_BOM = b"\xef\xbb\xbf"
_DOCUMENT_SUFFIXES = {".pdf", ".md", ".markdown", ".docx", ".doc", ".html", ".htm", ".rst", ".odt", ".rtf"}


MAX_LINE_BYTES = 64 << 20
"""Longest line read as one record (64 MiB). A line is held in memory whole to be parsed, so a longer
one (or a binary file without newlines) is reported as too long, with its size, and never read whole.
Real records are far shorter: a 128k-token chat is about 0.5 MB of UTF-8."""


def _lines(path: Path) -> Iterator[tuple[int, int, bytes, int]]:
    """(line number, byte offset, bytes, size in bytes) of every line, a UTF-8 BOM removed.

    A line (newline included) of up to MAX_LINE_BYTES comes back whole; a longer one comes back as its
    first MAX_LINE_BYTES bytes with its full size (the rest is counted, not held), so `size >
    MAX_LINE_BYTES` tells the caller it was cut. Line numbers count real lines, never pieces of one.
    """
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            size = len(raw)
            if size > MAX_LINE_BYTES:  # too long: keep its head, count the rest without holding it
                ended, raw = raw.endswith(b"\n"), raw[:MAX_LINE_BYTES]
                while not ended and (more := f.readline(1 << 20)):
                    size += len(more)
                    ended = more.endswith(b"\n")
            start, offset = offset, offset + size
            if number == 1 and raw.startswith(_BOM):
                raw, start, size = raw[len(_BOM):], start + len(_BOM), size - len(_BOM)
            yield number, start, raw, size


def _too_long(where: str, size: int) -> BadRecord:
    return BadRecord(where, "line-too-long", f"the line is {size:,} bytes, over the {MAX_LINE_BYTES:,}-byte limit for "
                                             "one record; split it into smaller records.")


def _head_lines(path: Path, n: int) -> list[tuple[int, bytes]]:
    """The first `n` non-empty lines as (line number, bytes), a UTF-8 BOM removed (see `_lines`)."""
    head = []
    for number, _, raw, _ in _lines(path):
        if raw.strip():
            head.append((number, raw))
            if len(head) == n:
                break
    return head


def _loads(data: bytes) -> object:
    """The JSON value in `data`, or None when it is not UTF-8 JSON."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


def _not_jsonl(path: Path, head: list[tuple[int, bytes]]) -> str:
    number, raw = head[0]
    suffix = path.suffix.lower()
    if raw.startswith(b"%PDF"):
        what, suffix = "it is a PDF", ".pdf"
    elif b"\x00" in raw or isinstance(_decode_line(raw, 0, ""), BadRecord):
        what = "it looks like a binary file"
    else:
        text = raw.decode("utf-8").strip()
        what = f"line {number} is not a JSON object ({text[:40] + ('...' if len(text) > 40 else '')!r})"
    hint = ""
    if suffix in (".csv", ".tsv"):
        hint = " Convert each row to a JSON object, e.g. pandas.read_csv(FILE).to_json(OUT, orient='records', lines=True)."
    elif suffix in _DOCUMENT_SUFFIXES:
        hint = " Documents are not a dataset: put them in your docs folder, run `onboard ingest DOCS`, then `onboard data build`."
    return (
        f"{path} is not JSONL: {what}. Expected one JSON object per line (or a .json array of objects, "
        f"or a .txt file of paragraphs).{hint}"
    )


def sniff_container(path: str | Path) -> str:
    """Say how a dataset file holds its records: "jsonl", "json" (an array) or "text" (.txt paragraphs).

    A file is not JSONL when none of its first 5 non-empty lines is (or starts like) a JSON object,
    no later line is one, and the whole file is no JSON array: one message then covers the file.

    Raises:
        BadDataset: the file is missing, is UTF-16, is one JSON object, or is not JSONL at all.
    """
    path = Path(path)
    if not path.is_file():
        raise BadDataset(f"{path}: no such file. Check the path, or build a dataset with `onboard data build`.")
    with path.open("rb") as f:
        if f.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            raise BadDataset(f"{path} is saved as UTF-16; re-save the file as UTF-8.")
    head = _head_lines(path, 5)
    if path.suffix.lower() == ".txt":  # plain text, unless it is JSONL under a .txt name
        return "jsonl" if head and all(isinstance(_loads(raw), dict) for _, raw in head) else "text"
    if not head:
        return "jsonl"  # empty: the reader yields nothing and the caller says so
    if path.suffix.lower() == ".json" and head[0][1].lstrip().startswith(b"["):
        return "json"
    if any(isinstance(_loads(raw), dict) for _, raw in head):
        return "jsonl"
    whole = _loads(path.read_bytes()) if path.stat().st_size < 256 << 20 else None
    if isinstance(whole, list):
        return "json"
    if isinstance(whole, dict) and not any(len(raw) >= MAX_LINE_BYTES for _, raw in head):  # not one long line
        lists = [k for k, v in whole.items() if isinstance(v, list)]
        hint = f" If the records are under {lists[0]!r}, save that list on its own as a .json file." if lists else ""
        raise BadDataset(
            f"{path} holds one JSON object spread over several lines; expected one JSON object per line "
            f"(JSONL) or a .json array of objects.{hint}"
        )
    if any(raw.lstrip().startswith(b"{") for _, raw in head):
        return "jsonl"  # meant as JSONL, with broken lines: each is reported
    if any(raw.lstrip().startswith(b"{") and isinstance(_loads(raw), dict) for _, _, raw, _ in _lines(path)):
        return "jsonl"  # JSONL under a header of 5+ junk lines: each junk line is reported
    raise BadDataset(_not_jsonl(path, head))


def _decode_line(raw: bytes, offset: int, where: str) -> str | BadRecord:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return BadRecord(where, "not-utf8", f"not valid UTF-8 at byte {offset + e.start}; re-save the file as UTF-8.")


def _object(value: object, where: str) -> dict | BadRecord:
    if isinstance(value, dict):
        return value
    return BadRecord(where, "not-object", f"expected a JSON object, got {_json_type(value)}.")


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict | BadRecord]]:
    for number, offset, raw, size in _lines(path):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        if size > MAX_LINE_BYTES:
            yield number, _too_long(where, size)
            continue
        text = _decode_line(raw, offset, where)
        if isinstance(text, BadRecord):
            yield number, text
            continue
        try:
            yield number, _object(json.loads(text.rstrip("\r\n")), where)
        except json.JSONDecodeError as e:
            yield number, BadRecord(where, "broken-json", f"broken JSON ({e.msg} at column {e.colno}); fix or delete the line.")


def _read_paragraphs(path: Path) -> Iterator[tuple[int, dict | BadRecord]]:
    block: list[tuple[int, int, bytes, int]] = []
    for line in chain(_lines(path), [(0, 0, b"", 0)]):  # the sentinel ends the last paragraph
        if line[2].strip():
            block.append(line)
            continue
        if block:
            texts = [_too_long(f"{path}:{n}", size) if size > MAX_LINE_BYTES else _decode_line(raw, offset, f"{path}:{n}")
                     for n, offset, raw, size in block]
            bad = [(n, t) for (n, _, _, _), t in zip(block, texts, strict=True) if isinstance(t, BadRecord)]
            yield bad[0] if bad else (block[0][0], {"text": "\n".join(t.rstrip("\r\n") for t in texts)})
        block = []


_WS = re.compile(r"[ \t\r\n]*")


def _read_array(path: Path) -> Iterator[tuple[int, dict | BadRecord]]:
    data = path.read_bytes()
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = skip + e.start
        number = data.count(b"\n", 0, at) + 1
        reason = f"not valid UTF-8 at byte {at}; re-save the file as UTF-8 (the array cannot be read until then)."
        yield number, BadRecord(f"{path}:{number}", "not-utf8", reason)
        return

    def broken(pos: int, reason: str) -> tuple[int, BadRecord]:
        number = text.count("\n", 0, pos) + 1
        return number, BadRecord(f"{path}:{number}", "broken-json", reason)

    pos = _WS.match(text).end()
    if not text.startswith("[", pos):
        yield broken(pos, "broken JSON: a .json dataset must be an array of objects, starting with '['.")
        return
    decoder, pos, number, counted = json.JSONDecoder(), pos + 1, 1, 0
    while True:
        pos = _WS.match(text, pos).end()
        if pos == len(text):
            yield broken(pos, "broken JSON: the array is not closed with ']'.")
            return
        if text[pos] == "]":
            break
        number, counted = number + text.count("\n", counted, pos), pos  # line where this record starts
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            yield broken(e.pos, f"broken JSON ({e.msg} at column {e.colno}); the records after it cannot be read until it is fixed.")
            return
        yield number, _object(value, f"{path}:{number}")
        pos = _WS.match(text, pos).end()
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos == len(text) or text[pos] != "]":
            yield broken(pos, "broken JSON: expected ',' or ']' after this record; the records after it cannot be read.")
            return
    end = _WS.match(text, pos + 1).end()
    if end < len(text):
        yield broken(end, "broken JSON: text after the closing ']'; delete it.")


def read_records(path: str | Path) -> Iterator[tuple[int, dict | BadRecord]]:
    """Yield `(line, record)` for each record of a dataset file, or `(line, BadRecord)` for one that
    cannot be read (broken JSON, not UTF-8, not an object). Lines are 1-based; a record in a .json
    array is numbered by the line it starts on, a .txt paragraph by its first line.

    Raises:
        BadDataset: the file is missing or is not a dataset at all (see `sniff_container`).
    """
    path = Path(path)
    container = sniff_container(path)
    reader = {"text": _read_paragraphs, "json": _read_array, "jsonl": _read_jsonl}[container]
    yield from reader(path)


def read_messages_file(path: str | Path) -> list[list[dict]]:
    """Read a chat dataset (messages, alpaca or sharegpt records; JSONL or a .json array); return one
    message list per record. Formats may be mixed here; `onboard data validate` reports mixing.

    Raises:
        BadDataset: the file is missing, or a record is broken (names file:line).
        NoExamples: the file holds no records.
    """
    rows = []
    for number, record in read_records(path):
        if isinstance(record, BadRecord):
            raise record
        rows.append(to_messages(record, f"{path}:{number}"))
    if not rows:
        raise NoExamples(f"{path}: no examples in the file. Add one JSON object per line, e.g. {{\"messages\": [...]}}.")
    return rows


SHAPES = {"chat": "messages", "preference": "chosen", "text": "text"}
"""Canonical record shapes and the key that tells them apart."""


def read_canonical(path: str | Path, shape: str | None = None) -> list[dict]:
    """Every record of a dataset file in canonical form (see formats.py), optionally all of one shape.

    Args:
        shape: "chat", "preference" or "text"; None accepts any.

    Raises:
        BadDataset: a broken record, or one of another shape, named by file:line with what to do.
        NoExamples: the file holds no records.
    """
    rows = []
    for number, record in read_records(path):
        if isinstance(record, BadRecord):
            raise BadDataset(f"{record} Run `onboard data validate {path}` to see every problem.")
        canon = to_canonical(record, f"{path}:{number}")
        if shape and SHAPES[shape] not in canon:
            has = next((s for s, key in SHAPES.items() if key in canon), "?")
            raise BadDataset(f"{path}:{number}: this needs {shape} records and this one is {has}. "
                             f"Check the file with `onboard data validate {path}`, or build one with "
                             "`onboard data build --kind ...`.")
        rows.append(canon)
    if not rows:
        raise NoExamples(f"{path}: no records. Add one JSON object per line.")
    return rows
