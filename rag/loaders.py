"""Load documents from a folder: each becomes a `Document` with a stable id and its relative path."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import BadDocument, DocsNotFound, NoDocuments

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class Document:
    """One source document."""

    id: str
    """Stable id: a hash of the relative path."""
    source: str
    """Path relative to the docs root, with forward slashes."""
    title: str
    """The first heading, or the file name."""
    text: str
    """Full text, NFC-normalised, newlines as \\n."""
    language: str
    """'zh' or 'en' (a simple script test; good enough to stratify and filter)."""
    metadata: dict = field(default_factory=dict)


def detect_language(text: str) -> str:
    """'zh' when CJK characters make up a tenth of the letters, else 'en'."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if _CJK.match(c))
    return "zh" if cjk / len(letters) >= 0.1 else "en"


def _title(text: str, path: Path) -> str:
    for line in text.splitlines():
        m = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if m:
            return m.group(1)
    return path.stem


def load_file(path: Path, root: Path) -> Document:
    """Read one text file. Raises BadDocument (naming the file) if it is not UTF-8."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise BadDocument(
            f"{path}:{line}: not valid UTF-8 (byte {e.start}). "
            "Convert it, e.g. `iconv -f GB18030 -t UTF-8 in.txt > out.txt`, or remove it from the folder."
        ) from None
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    source = path.relative_to(root).as_posix()
    return Document(
        id=hashlib.sha256(source.encode()).hexdigest()[:16],
        source=source,
        title=_title(text, path),
        text=text,
        language=detect_language(text),
    )


def load_documents(root: str | Path) -> list[Document]:
    """Load every supported file under `root`, recursively, in a stable order.

    Raises:
        DocsNotFound: `root` does not exist or is not a folder.
        NoDocuments: no supported file with any text was found.
        BadDocument: a file could not be decoded (the message names it).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DocsNotFound(f"{root}: no such folder. Pass the folder that holds your .md/.txt documents.")
    if root.is_file():
        files, root = [root], root.parent
    else:
        files = sorted(
            p for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and not p.name.startswith(".")
        )
    docs = [d for d in (load_file(p, root) for p in files) if d.text.strip()]
    if not docs:
        raise NoDocuments(
            f"{root}: no documents with text found (looked for {', '.join(SUPPORTED_SUFFIXES)}). "
            "Add your documents to this folder or point to another one."
        )
    log.info("loaded %d documents from %s", len(docs), root)
    return docs
