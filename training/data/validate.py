"""Check a user's dataset file record by record, and write a cleaned copy.

    onboard data validate FILE [--fix]

Every bad record is reported by line with a `code` and a reason a person can act on. A file that is
not a dataset at all (CSV, PDF, markdown, binary) gets one message for the whole file instead.

One format per file: the file's format is the one most of its records use (the first one seen on a
tie). A record in another format is reported as `mixed-format`, the three chat formats (messages,
alpaca, sharegpt) included, because the tools people feed these files to read one format.
`fix_file` rewrites such a record in the file's format when it can (an alpaca record in a messages
file) and drops it when it cannot (a text record in a chat file, a multi-turn chat in an alpaca file).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from training.data.files import read_records, sniff_container
from training.data.formats import (
    detect_format,
    from_canonical,
    to_canonical,
    write_json_array,
    write_jsonl,
)
from training.errors import BadDataset, BadRecord, NoExamples

log = logging.getLogger(__name__)

CODES = (
    "broken-json", "line-too-long", "not-utf8", "not-object", "unknown-format", "missing-field", "unknown-role",
    "empty-content", "no-assistant", "duplicate", "too-long", "mixed-format",
)
"""Every `Problem.code`, in the order reports list them:

broken-json     the line (or the .json array from there on) does not parse
line-too-long   a line longer than files.MAX_LINE_BYTES (64 MiB): not read; the reason gives its size
not-utf8        an invalid UTF-8 byte sequence; the reason gives its byte offset in the file
not-object      valid JSON but not an object (a string, number, array)
unknown-format  an object whose keys match no format
missing-field   a required field is absent or has the wrong type (e.g. 'output', 'messages' not a list)
unknown-role    a role other than system/user/assistant (sharegpt: human/gpt/system, user/assistant)
empty-content   a turn, instruction, answer or text that is empty or only whitespace
no-assistant    a chat whose last turn is not the assistant's answer
duplicate       the same content as an earlier record (meta ignored), or chosen == rejected
too-long        more tokens than the model's context (only when a token counter is given)
mixed-format    a record in another format than most of the file's records
"""

TokenCounter = Callable[[dict], int]
"""Counts the tokens of one canonical record as the target model sees it (chat template applied)."""


@dataclass(order=True)
class Problem:
    """One bad record: the line it starts on, what kind of defect, and what to do about it."""

    line: int
    """1-based line where the record starts (for a .json array, where its object opens)."""
    code: str
    """The kind of defect, one of CODES; stable for scripts and tests."""
    reason: str
    """What is wrong and how to fix it, for a person."""
    path: Path | None = field(default=None, compare=False)
    """The file, so `str(problem)` reads `path:line: reason`."""

    def format(self, path: str | Path | None = None) -> str:
        """`path:line: reason`, with `path` overriding the file this problem was found in."""
        path = path if path is not None else self.path
        return f"{path}:{self.line}: {self.reason}" if path is not None else f"line {self.line}: {self.reason}"

    def __str__(self) -> str:
        return self.format()


@dataclass
class ValidationReport:
    """What `validate_file` found in one dataset file."""

    path: Path
    """The file checked."""
    format: str | None
    """The file's record format (most records use it), one of formats.FORMATS; None if no record had one."""
    total: int
    """Records in the file, good and bad (blank lines are not records)."""
    valid: int
    """Records with no problem at all."""
    problems: list[Problem] = field(default_factory=list)
    """One per bad record, ordered by line."""

    def by_code(self) -> dict[str, int]:
        """How many problems of each code, in CODES order."""
        counts = Counter(p.code for p in self.problems)
        return {code: counts[code] for code in CODES if counts[code]}

    def ok(self) -> bool:
        """True when no record has a problem."""
        return not self.problems

    def summary(self) -> str:
        """One line: `file: format, N records, M valid; K problems (2 duplicate, 1 too-long).`"""
        head = f"{self.path}: {self.format or 'unknown format'}, {self.total} records, {self.valid} valid"
        if not self.problems:
            return head + "."
        kinds = ", ".join(f"{n} {code}" for code, n in self.by_code().items())
        n = len(self.problems)
        return f"{head}; {n} problem{'s' if n > 1 else ''} ({kinds})."


def _file_format(records: list[tuple[int, dict | BadRecord]]) -> str | None:
    counts = Counter(f for _, r in records if isinstance(r, dict) and (f := detect_format(r)) is not None)
    return counts.most_common(1)[0][0] if counts else None  # most_common is stable: ties go to the first seen


def _content_key(canon: dict) -> str:
    return json.dumps({k: v for k, v in canon.items() if k != "meta"}, sort_keys=True, ensure_ascii=False)


def _scan(
    path: Path, count_tokens: TokenCounter | None, max_tokens: int | None
) -> tuple[ValidationReport, list[dict]]:
    """Check every record; return the report and the records a fixed copy keeps, in the file's format."""
    if (count_tokens is None) != (max_tokens is None):
        raise ValueError("count_tokens and max_tokens go together: pass both to check length, or neither")
    records = list(read_records(path))
    if not records:
        raise NoExamples(
            f"{path} is empty: no records. Add one JSON object per line, e.g. "
            '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}.'
        )
    fmt = _file_format(records)
    report = ValidationReport(path=path, format=fmt, total=len(records), valid=0)
    keep: list[dict] = []
    seen: dict[str, int] = {}

    def problem(line: int, code: str, reason: str) -> None:
        report.problems.append(Problem(line, code, reason, path))

    for line, record in records:
        if isinstance(record, BadRecord):
            problem(line, record.code, record.reason)
            continue
        try:
            canon = to_canonical(record, f"{path}:{line}")
        except BadRecord as e:
            problem(line, e.code, e.reason)
            continue
        key = _content_key(canon)
        if key in seen:
            problem(line, "duplicate", f"duplicate of line {seen[key]}; delete one of them.")
            continue
        seen[key] = line
        if count_tokens is not None and (n := count_tokens(canon)) > max_tokens:
            problem(line, "too-long", f"{n} tokens; the model's context is {max_tokens}. Shorten the record or train with a longer context.")
            continue
        own = detect_format(record)
        if own != fmt:
            try:
                keep.append(from_canonical(canon, fmt))
                then = f"--fix rewrites it as {fmt}."
            except BadDataset as e:
                then = f"--fix drops it: {e}"
            problem(line, "mixed-format", f"{own} record in a file of {fmt} records; use one format per file. {then}")
            continue
        keep.append(record)
        report.valid += 1
    report.problems.sort()
    return report, keep


def validate_file(
    path: str | Path, count_tokens: TokenCounter | None = None, max_tokens: int | None = None
) -> ValidationReport:
    """Check every record of a dataset file (JSONL, a .json array, or .txt paragraphs).

    Args:
        path: the dataset file.
        count_tokens: tokens in one canonical record as the model sees it; with `max_tokens`, longer
            records are reported as too-long. Give both or neither.
        max_tokens: the model's context length.

    Returns:
        The report; `report.ok()` when every record is good.

    Raises:
        BadDataset: the file is missing, or is not a dataset at all (one message for the file).
        NoExamples: the file holds no records.
    """
    report, _ = _scan(Path(path), count_tokens, max_tokens)
    log.info("%s", report.summary())
    return report


def default_fix_path(path: str | Path) -> Path:
    """Where `fix_file` writes by default: `<stem>.fixed<suffix>` beside the input (.txt gives .jsonl)."""
    path = Path(path)
    suffix = path.suffix if path.suffix.lower() not in ("", ".txt") else ".jsonl"
    return path.with_name(f"{path.stem}.fixed{suffix}")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def fix_file(
    path: str | Path,
    out: str | Path | None = None,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
) -> tuple[ValidationReport, Path, int]:
    """Write a cleaned copy of a dataset: its good records, duplicates dropped, in the file's format.

    The input file is never written. Good records are copied as they are (extra keys kept); a
    record in another format is rewritten in the file's format when it can be, else dropped. A
    JSONL file gives JSONL, a .json array a .json array, a .txt file JSONL `{"text"}` records.

    Args:
        path: the dataset file.
        out: where to write; default `default_fix_path(path)`. Replaced if it exists.
        count_tokens, max_tokens: as for `validate_file`; too-long records are dropped.

    Returns:
        (the report on the input, the file written, records written).

    Raises:
        BadDataset: `out` is the input file, or the input is missing or not a dataset.
        NoExamples: the input holds no good record, so there is nothing to write.
    """
    path = Path(path)
    out = Path(out) if out is not None else default_fix_path(path)
    if _same_file(path, out):
        raise BadDataset(
            f"{out}: refusing to write over the input file; the fix writes a cleaned copy. Choose another output path."
        )
    report, keep = _scan(path, count_tokens, max_tokens)
    if not keep:
        raise NoExamples(
            f"{path}: no good record to write ({report.summary()}). "
            f"Run `onboard data validate {path}` to see each problem."
        )
    writer = write_json_array if sniff_container(path) == "json" else write_jsonl
    written = writer(out, keep)
    log.info("%s; wrote %d records to %s", report.summary(), written, out)
    return report, out, written
