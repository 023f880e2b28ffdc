"""The project's error base class, and the errors raised by the RAG layer.

Every package's errors derive from `OnboardError` (each in that package's `errors.py`), so the CLI and
the API can tell a user's mistake (one line, what to do next) from a bug (a traceback). `rag` holds the
base class because every other package depends on `rag`.
"""

from __future__ import annotations


class OnboardError(Exception):
    """Base class of every user-facing Onboard error: the message says what went wrong and what to do."""


class BadOption(OnboardError, ValueError):
    """An option, setting or config value is out of range or of the wrong kind; the message names it."""


class BadContract(OnboardError):
    """A contract file (model card, workspace record) is unreadable, of an unknown schema version, or
    lacks a field; the message names the file."""


class RagError(OnboardError):
    """Base class: a user-facing failure in loading, ingesting or retrieving documents."""


class BadRagOption(RagError, BadOption):
    pass


class Unreadable(RagError):
    """A file cannot be turned into text; the message says why (and where, when it knows). Ingest lists
    the file as skipped with that reason (`--strict` stops instead)."""


class NavigationPage(Unreadable):
    """The file is a navigation page (a table of contents, an index, a site map: mostly links). It is left out
    of the index, and listed with the skipped files, so that it does not crowd the hits; not an error, also
    with `--strict`."""


class DocsNotFound(RagError):
    pass


class NoDocuments(RagError):
    pass


class BadDocument(RagError):
    pass


class EmbeddingMismatch(RagError):
    pass


class EmptyIndex(RagError):
    pass


class DiskFull(OnboardError):
    """A write failed for lack of space; the message names the folder, the space needed when known, and
    says that nothing half-written was kept. Raised by every stage that writes (ingest, merge, export)."""


def is_disk_full(e: BaseException) -> bool:
    """Whether `e` is a failed write for lack of space, whatever library raised it (OSError ENOSPC,
    SQLite's "database or disk is full", safetensors' `StorageFull`)."""
    import errno

    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    return any(s in text for s in ("No space left on device", "disk is full", "StorageFull", "Disk quota exceeded"))
