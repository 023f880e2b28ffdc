"""Load documents from a folder: each becomes a `Document` with a stable id, its path relative to
the docs root, a title and a language. Files that cannot be read are skipped and reported."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import BadDocument, DocsNotFound, NoDocuments
from rag.loaders.readers import READERS, Unreadable

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = tuple(READERS)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class Document:
    """One source document."""

    id: str
    """Stable id: a hash of the relative path."""
    source: str
    """Path relative to the docs root, with forward slashes."""
    title: str
    text: str
    """Full text as Markdown-like lines, NFC-normalised, newlines as \\n."""
    language: str
    """'zh' or 'en'."""
    page_starts: list[int] = field(default_factory=list)
    """Character offset where each page begins (PDFs); empty when the format has no pages."""
    tags: list[str] = field(default_factory=list)
    kind: str = "text"

    def page_at(self, offset: int) -> int:
        """1-based page holding `offset`, or 0 when the document has no pages."""
        return sum(1 for s in self.page_starts if s <= offset)


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class LoadResult:
    documents: list[Document]
    skipped: list[Skipped]


def detect_language(text: str) -> str:
    """'zh' when CJK characters make up a tenth of the letters, else 'en'."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if _CJK.match(c))
    return "zh" if cjk / len(letters) >= 0.1 else "en"


def _first_heading(text: str) -> str | None:
    m = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)
    return m.group(1) if m else None


def load_file(path: Path, root: Path) -> Document:
    """Read one file with the reader for its suffix.

    Raises:
        Unreadable: the file cannot be read; the message says why.
    """
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise Unreadable(f"{path}: unsupported file type (supported: {', '.join(SUPPORTED_SUFFIXES)}).")
    parsed = reader(path)
    text = unicodedata.normalize("NFC", parsed.text.replace("\r\n", "\n").replace("\r", "\n"))
    source = path.relative_to(root).as_posix()
    return Document(
        id=hashlib.sha256(source.encode()).hexdigest()[:16],
        source=source,
        title=parsed.title or _first_heading(text) or path.stem,
        text=text,
        language=detect_language(text),
        page_starts=parsed.page_starts,
        tags=parsed.tags,
        kind=parsed.kind,
    )


def load_documents(root: str | Path, strict: bool = False) -> LoadResult:
    """Load every file under `root` (recursively, in a stable order), skipping what cannot be read.

    Args:
        strict: raise on the first file that cannot be read instead of skipping it.

    Raises:
        DocsNotFound: `root` does not exist.
        NoDocuments: nothing readable with any text was found (the message lists what was skipped).
        BadDocument: with `strict`, the first unreadable file.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DocsNotFound(f"{root}: no such folder. Pass the folder that holds your documents.")
    if root.is_file():
        files, root = [root], root.parent
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
    docs, skipped = [], []
    for p in files:
        try:
            doc = load_file(p, root)
        except Unreadable as e:
            if strict:
                raise BadDocument(str(e)) from None
            skipped.append(Skipped(p.relative_to(root).as_posix(), str(e)))
            log.warning("skipped %s", e)
            continue
        if doc.text.strip():
            docs.append(doc)
        else:
            skipped.append(Skipped(doc.source, f"{p}: empty"))
    if not docs:
        why = "".join(f"\n  {s.reason}" for s in skipped[:10])
        raise NoDocuments(
            f"{root}: no documents with text found (readable: {', '.join(SUPPORTED_SUFFIXES)}). "
            f"Add your documents to this folder or point to another one.{why}"
        )
    log.info("loaded %d documents from %s (%d skipped)", len(docs), root, len(skipped))
    return LoadResult(docs, skipped)
