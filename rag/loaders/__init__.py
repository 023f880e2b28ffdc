"""Load documents from a folder: each becomes a `Document` with a stable id, its path relative to
the docs root, a title and a language. Files that cannot be read are skipped and reported.

A document is identified by the folder it was loaded from (`root`, absolute) and its path in that
folder (`source`): two folders that both hold `faq.md` hold two documents. `source` alone is what a
user sees (citations); `root` tells them apart in the index.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import BadDocument, DocsNotFound, NavigationPage, NoDocuments
from rag.loaders.readers import READERS, Unreadable

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = tuple(READERS)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class Document:
    """One source document."""

    id: str
    """Stable id: a hash of `root` and `source` (of `source` alone when `root` is empty)."""
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
    root: str = ""
    """Absolute path of the folder the document was loaded from (the file's folder when one file was
    loaded); empty for documents made in memory."""

    def page_at(self, offset: int) -> int:
        """1-based page holding `offset`, or 0 when the document has no pages."""
        return sum(1 for s in self.page_starts if s <= offset)


@dataclass
class Skipped:
    path: str
    reason: str
    left_out: bool = False
    """Read, and left out on purpose (a navigation page): chunks an earlier ingest made of it are removed."""


@dataclass
class LoadResult:
    documents: list[Document]
    skipped: list[Skipped]
    root: str = ""
    """The folder loaded, absolute (a single file's folder)."""
    single_file: bool = False
    """One file was loaded, not a folder: the rest of its folder is not known."""


def document_id(root: str, source: str) -> str:
    """A document's id: the same file in the same folder always gets the same one."""
    key = f"{root}\n{source}" if root else source
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "no details"
    return f"{type(e).__name__}: {text[:200]}"


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
        Unreadable: the file cannot be read, whatever the reader or the file system raised; the
            message names the file and says why.
    """
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        raise Unreadable(f"{path}: unsupported file type (supported: {', '.join(SUPPORTED_SUFFIXES)}).")
    try:
        parsed = reader(path)
    except Unreadable:
        raise
    except OSError as e:  # PermissionError, a file removed while loading, an I/O error
        raise Unreadable(f"{path}: cannot be read ({e.strerror or _one_line(e)}). Check that it exists and that "
                         "you may read it (`ls -l`), or move it out of the folder.") from None
    except Exception as e:  # noqa: BLE001 - a parser fails on a damaged file in its own way; the file is skipped
        log.debug("reading %s failed", path, exc_info=True)
        raise Unreadable(f"{path}: not a readable {suffix} file, damaged or truncated? ({_one_line(e)}). "
                         "Open and save it again, or move it out of the folder.") from None
    if parsed.navigation:
        raise NavigationPage(f"{path}: a navigation page ({parsed.navigation}: a table of contents, an index or a "
                             "site map); left out of the index so that it does not crowd the hits.")
    text = unicodedata.normalize("NFC", parsed.text.replace("\r\n", "\n").replace("\r", "\n"))
    source = path.relative_to(root).as_posix()
    folder = str(root.resolve())
    return Document(
        id=document_id(folder, source),
        source=source,
        title=parsed.title or _first_heading(text) or path.stem,
        text=text,
        language=detect_language(text),
        page_starts=parsed.page_starts,
        tags=parsed.tags,
        kind=parsed.kind,
        root=folder,
    )


def _load_one(p: Path, root: Path, strict: bool) -> Document | Skipped:
    """The document in `p`, or why it is skipped (with `strict`, raise instead)."""
    try:
        doc = load_file(p, root)
    except NavigationPage as e:
        log.info("left out %s", e)
        return Skipped(p.relative_to(root).as_posix(), str(e), left_out=True)
    except Unreadable as e:
        if strict:
            raise BadDocument(str(e)) from None
        log.warning("skipped %s", e)
        return Skipped(p.relative_to(root).as_posix(), str(e))
    return doc if doc.text.strip() else Skipped(doc.source, f"{p}: empty")


def load_documents(root: str | Path, strict: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> LoadResult:
    """Load every file under `root` (recursively, in a stable order), skipping what cannot be read.

    Args:
        strict: raise on the first file that cannot be read instead of skipping it.
        progress: called with (files read, files to read) before the first file and after each.

    Raises:
        DocsNotFound: `root` does not exist.
        NoDocuments: nothing readable with any text was found (the message lists what was skipped).
        BadDocument: with `strict`, the first unreadable file.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DocsNotFound(f"{root}: no such folder. Pass the folder that holds your documents.")
    single = root.is_file()
    if single:
        files, root = [root], root.parent
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
    docs, skipped = [], []
    if progress:
        progress(0, len(files))
    for n, p in enumerate(files, 1):
        got = _load_one(p, root, strict)
        (docs if isinstance(got, Document) else skipped).append(got)
        if progress:
            progress(n, len(files))
    if not docs:
        why = "".join(f"\n  {s.reason}" for s in skipped[:10])
        raise NoDocuments(
            f"{root}: no documents with text found (readable: {', '.join(SUPPORTED_SUFFIXES)}). "
            f"Add your documents to this folder or point to another one.{why}"
        )
    log.info("loaded %d documents from %s (%d skipped)", len(docs), root, len(skipped))
    return LoadResult(docs, skipped, str(root.resolve()), single)
