"""Find the question/answer pairs a document states explicitly, in English and Chinese.

Three shapes are recognised:
- marker lines: `Q:`/`A:`, `Question:`/`Answer:`, `问：`/`答：` (full- or half-width colon);
- a heading that asks (ends in `?` or `？`, or reads as a question without it: "How can I keep a log",
  "为什么要这样做"; training/data/questions.py), answered by the text under it;
Each pair keeps the character offset where it starts, so it can be traced to its chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.chunking import heading_matches
from training.data.questions import asks, clean_question

_Q = re.compile(r"^\s*(?:\*\*)?(?:Q|Question|问|问题)(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.*)$", re.IGNORECASE)
_A = re.compile(r"^\s*(?:\*\*)?(?:A|Answer|答|回答)(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.*)$", re.IGNORECASE)


@dataclass
class QAPair:
    question: str
    answer: str
    start: int
    """Character offset of the question in the document."""
    rule: str
    """Which pattern found it: 'qa-markers' or 'question-heading'."""


def _lines(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        out.append((pos, line.rstrip("\n")))
        pos += len(line)
    return out


def _marker_pairs(lines: list[tuple[int, str]]) -> list[QAPair]:
    pairs, i = [], 0
    heads = heading_matches([t for _, t in lines])
    while i < len(lines):
        start, line = lines[i]
        m = _Q.match(line)
        if not m:
            i += 1
            continue
        q = [m.group(1)]
        i += 1
        while i < len(lines) and not _A.match(lines[i][1]) and not _Q.match(lines[i][1]) and lines[i][1].strip():
            q.append(lines[i][1])
            i += 1
        if i >= len(lines) or not _A.match(lines[i][1]):
            continue
        a = [_A.match(lines[i][1]).group(1)]
        i += 1
        while i < len(lines) and lines[i][1].strip() and not _Q.match(lines[i][1]) and not heads[i]:
            a.append(lines[i][1])
            i += 1
        question, answer = " ".join(s.strip() for s in q).strip(), "\n".join(s.strip() for s in a).strip()
        if question and answer:
            pairs.append(QAPair(question, answer, start, "qa-markers"))
    return pairs


def _heading_pairs(lines: list[tuple[int, str]]) -> list[QAPair]:
    pairs = []
    heads = heading_matches([t for _, t in lines])  # a '#' line in a code block is no heading
    for idx, (start, _) in enumerate(lines):
        m = heads[idx]
        question = clean_question(m.group(2)) if m else ""
        if not question or not asks(question):
            continue
        level, body = len(m.group(1)), []
        for (_, nxt), h in zip(lines[idx + 1 :], heads[idx + 1 :], strict=True):
            if h and len(h.group(1)) <= level:
                break
            body.append(nxt)
        answer = "\n".join(body).strip()
        if answer:
            mark = "" if question.endswith(("?", "？")) else ("？" if re.search(r"[\u4e00-\u9fff]", question) else "?")
            pairs.append(QAPair(question + mark, answer, start, "question-heading"))
    return pairs


def extract_qa(text: str) -> list[QAPair]:
    """All explicit Q/A pairs in `text`, in document order."""
    lines = _lines(text)
    return sorted(_marker_pairs(lines) + _heading_pairs(lines), key=lambda p: p.start)
