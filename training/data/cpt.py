"""Continued pre-training corpus: the documents' own text, boilerplate removed, packed into blocks.

Boilerplate is what repeats across documents rather than what they say: a line found in at least
`BOILERPLATE_MIN_DOCS` documents and in a third of them (navigation, footers, copyright lines) is
dropped, as are lines matching well-known boilerplate phrases. Each document's paragraphs are then
packed greedily into blocks of at most `block_tokens` tokens (a paragraph longer than that is cut at
sentence ends), so training sees whole paragraphs and no block mixes two documents.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from rag.chunking import Chunk
from rag.loaders import Document
from training.data.rules import SENTENCE_END

BOILERPLATE_MIN_DOCS = 3
_BOILERPLATE = re.compile(
    r"(all rights reserved|copyright ©|©\s*\d{4}|skip to (main )?content|cookie (policy|settings)|"
    r"privacy policy \||版权所有|保留所有权利|返回顶部)", re.IGNORECASE)


def boilerplate_lines(docs: list[Document]) -> set[str]:
    """Lines repeated across enough documents to be page furniture rather than content."""
    seen = Counter()
    for d in docs:
        seen.update({line.strip() for line in d.text.splitlines() if line.strip() and not line.startswith("#")})
    need = max(BOILERPLATE_MIN_DOCS, len(docs) / 3)
    return {line for line, n in seen.items() if n >= need}


def _paragraphs(text: str, drop: set[str]) -> list[tuple[int, str]]:
    """(offset, paragraph) pairs; boilerplate lines removed."""
    out, pos = [], 0
    for para in re.split(r"(\n\s*\n)", text):
        start, pos = pos, pos + len(para)
        lines = [ln for ln in para.splitlines() if ln.strip() not in drop and not _BOILERPLATE.search(ln)]
        body = "\n".join(lines).strip()
        if body:
            out.append((start, body))
    return out


def _pieces(para: str, count: Callable[[str], int], limit: int) -> list[tuple[str, int]]:
    """The paragraph, or its sentences regrouped under `limit` tokens; each with its token count."""
    n = count(para)
    if n <= limit:
        return [(para, n)]
    pieces, cur, used = [], [], 0
    for s in SENTENCE_END.split(para):
        k = count(s) + 1
        if cur and used + k > limit:
            pieces.append((" ".join(cur), used))
            cur, used = [], 0
        cur.append(s)
        used += k
    return pieces + ([(" ".join(cur), used)] if cur else [])


def build_corpus(docs: list[Document], chunks: dict[str, list[Chunk]], count_tokens: Callable[[str], int],
                 block_tokens: int = 512) -> tuple[list[dict], dict]:
    """Return ({"text", "meta"} records, stats). `chunks` maps doc id to its chunks (for provenance)."""
    drop = boilerplate_lines(docs)
    records, dropped_lines = [], 0
    for doc in docs:
        dropped_lines += sum(1 for ln in doc.text.splitlines() if ln.strip() in drop or _BOILERPLATE.search(ln))
        block, block_start, block_end, used = [], None, 0, 0
        blocks: list[tuple[int, int, str]] = []
        for start, para in _paragraphs(doc.text, drop):
            for piece, n in _pieces(para, count_tokens, block_tokens):
                n += 1  # token counts add up to within a token per joint
                if block and used + n > block_tokens:
                    blocks.append((block_start, block_end, "\n\n".join(block)))
                    block, block_start, used = [], None, 0
                block.append(piece)
                used += n
                block_start = start if block_start is None else block_start
                block_end = start + len(para)
        if block:
            blocks.append((block_start, block_end, "\n\n".join(block)))
        for start, end, text in blocks:
            ids = [c.id for c in chunks.get(doc.id, []) if c.start < end and c.end > start]
            records.append({"text": text, "meta": {"doc_id": doc.id, "source": doc.source, "root": doc.root,
                                                   "language": doc.language, "chunk_ids": ids, "rule": "cpt"}})
    return records, {"boilerplate_lines": sorted(drop)[:20], "boilerplate_lines_dropped": dropped_lines,
                     "block_tokens": block_tokens}
