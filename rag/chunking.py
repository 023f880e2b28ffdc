"""Structure-aware chunking: split on headings, keep the heading path, pack paragraphs to a token budget.

Every chunk keeps its character span in the source document, so anything derived from the text
(a Q/A pair, a quote) can be traced back to the chunk that holds it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rag.loaders import Document

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
"""A Markdown code fence: inside one, a line starting with '#' is a shell comment or a root prompt, not a heading."""
# Sentence ends: English punctuation followed by space, or Chinese full-width marks (no space follows).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])")
# Table rows and list items: a long block of them is split between lines, never inside one.
_LINE_ITEM = re.compile(r"^\s*(\||[-*+]\s|\d+[.)]\s)")


@dataclass
class Chunk:
    """A piece of a document, the unit that is embedded, retrieved and cited."""

    id: str
    """Content hash of (root, source, text): the same text in the same file always gets the same id."""
    doc_id: str
    source: str
    title: str
    heading_path: str
    """Headings above the chunk, joined by ' > '."""
    text: str
    start: int
    """Character offset of the chunk's first character in the document text."""
    end: int
    language: str
    page: int = 0
    """1-based page where the chunk starts (PDFs), 0 when the document has no pages."""
    tags: list[str] = field(default_factory=list)
    kind: str = "text"
    root: str = ""
    """The folder the document was loaded from (`Document.root`); with `source` it names the file."""

    def metadata(self) -> dict:
        meta = {
            "doc_id": self.doc_id,
            "source": self.source,
            "root": self.root,
            "title": self.title,
            "heading_path": self.heading_path,
            "start": self.start,
            "end": self.end,
            "language": self.language,
            "page": self.page,
            "kind": self.kind,
        }
        if self.tags:  # Chroma refuses empty lists
            meta["tags"] = list(self.tags)
        return meta


def chunk_id(source: str, text: str, root: str = "") -> str:
    """The chunk's id; without a `root` it is the id Onboard gave chunks before roots were recorded."""
    key = f"{root}\n{source}\n{text}" if root else f"{source}\n{text}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def heading_matches(lines: list[str]) -> list[re.Match | None]:
    """For each line, its heading match, or None (also for every line inside a fenced code block)."""
    out: list[re.Match | None] = []
    fence = ""
    for line in lines:
        f = _FENCE.match(line)
        if fence:
            if f and f.group(1)[0] == fence[0] and len(f.group(1)) >= len(fence):
                fence = ""
            out.append(None)
        elif f:
            fence = f.group(1)
            out.append(None)
        else:
            out.append(HEADING.match(line.rstrip("\n")))
    return out


def _sections(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield (heading_path, start, end) for each run of text between headings (code blocks never hold one)."""
    stack: list[tuple[int, str]] = []
    path, start, pos = "", 0, 0
    lines = text.splitlines(keepends=True)
    heads = heading_matches(lines)
    first = 0  # index of the line at `start`
    for i, (line, m) in enumerate(zip(lines, heads, strict=True)):
        if m:
            if any(ln.strip() and not h for ln, h in zip(lines[first:i], heads[first:i], strict=True)):
                yield path, start, pos
                start, first = pos, i  # the heading line stays with its section: it carries meaning
            # else: headings with no text of their own join the next section
            level = len(m.group(1))
            stack = [(lv, h) for lv, h in stack if lv < level] + [(level, m.group(2))]
            path = " > ".join(h for _, h in stack)
        pos += len(line)
    if text[start:pos].strip():
        yield path, start, pos


def _pieces(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Split [start, end) into paragraphs (blank-line separated), as spans."""
    for m in re.finditer(r"(?:[^\n]|\n(?!\s*\n))+", text[start:end]):
        if m.group().strip():
            lead = len(m.group()) - len(m.group().lstrip())
            yield start + m.start() + lead, start + m.end()


def _line_items(text: str, start: int, end: int) -> list[tuple[int, int]] | None:
    """Spans of the lines of a table or list block, or None if the block is prose."""
    spans, pos = [], start
    for line in text[start:end].split("\n"):
        if line.strip():
            if not _LINE_ITEM.match(line):
                return None
            spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, s = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        if m.end() > s and text[s : m.start() or m.end()].strip():
            spans.append((s, m.end()))
            s = m.end()
    if text[s:end].strip():
        spans.append((s, end))
    return spans


def chunk_document(
    doc: Document, count_tokens: Callable[[str], int], max_tokens: int = 200, overlap_sentences: int = 1
) -> list[Chunk]:
    """Split a document into chunks of at most ~max_tokens tokens.

    Sections (text under one heading) are never merged; within a section whole paragraphs are packed
    together, and a paragraph longer than the budget is split by sentences with `overlap_sentences`
    sentences of overlap; a table or list is split between rows/items, never inside one.
    """
    text, chunks = doc.text, []

    def emit(heading: str, s: int, e: int) -> None:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            body = text[s:e]
            chunks.append(Chunk(chunk_id(doc.source, body, doc.root), doc.id, doc.source, doc.title, heading,
                                body, s, e, doc.language, doc.page_at(s), doc.tags, doc.kind, doc.root))

    # Each paragraph/sentence is tokenized once and windows are sized by summing: exact for
    # whitespace-splitting tokenizers (WordPiece), close for BPE, and linear instead of quadratic.
    for heading, s0, e0 in _sections(text):
        cur: tuple[int, int] | None = None
        cur_tokens = 0
        for ps, pe in _pieces(text, s0, e0):
            n = count_tokens(text[ps:pe])
            same_page = cur is not None and doc.page_at(cur[0]) == doc.page_at(ps)  # a citation names one page
            if cur and same_page and cur_tokens + n <= max_tokens:
                cur, cur_tokens = (cur[0], pe), cur_tokens + n
                continue
            if n <= max_tokens:
                if cur:
                    emit(heading, *cur)
                cur, cur_tokens = (ps, pe), n
                continue
            # A long paragraph is split by sentences (a table or list: by rows/items, with no overlap);
            # what is pending (often just the heading line) leads the first piece rather than standing alone.
            rows = _line_items(text, ps, pe)
            overlap = 0 if rows else overlap_sentences
            pieces = ([cur] if cur else []) + (rows or _sentences(text, ps, pe))
            sizes = [count_tokens(text[a:b]) for a, b in pieces]
            cur = None
            i = 0
            while i < len(pieces):
                j, total = i + 1, sizes[i]
                while j < len(pieces) and total + sizes[j] <= max_tokens:
                    total += sizes[j]
                    j += 1
                emit(heading, pieces[i][0], pieces[j - 1][1])
                i = j if j >= len(pieces) else max(i + 1, j - overlap)
        if cur:
            emit(heading, *cur)
    return chunks
