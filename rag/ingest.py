"""Ingest a folder of documents into the vector store, incrementally, idempotently and kill-safely.

Chunk ids are content hashes: re-ingesting unchanged files adds nothing, a changed file's stale
chunks are removed, and with `sync` the chunks of deleted files go too. Chunks are written in
batches with `upsert`, so a run killed midway leaves only whole, correct chunks and the next run
adds the rest: the result is the same collection a clean run makes. The BM25 index is rebuilt from
the collection at the end (and by the retriever whenever it finds it stale).

A file is identified by the folder ingested (its absolute path, the chunk metadata `root`) and its
path in that folder (`source`, what citations show): two folders that both hold `faq.md` keep both,
and `sync` removes only chunks of files gone from the folder being ingested. The ingest record
(`rag.ingest_record`) says, from before the first write until the run completes, that the index is
incomplete.

Collections built before chunks carried `root` are adopted on the next ingest: their chunks are
given the root the old record names (its `docs`, when the record describes this collection), so a
later ingest of that folder replaces them (re-embedding them once: chunk ids now include the root)
and an ingest of another folder leaves them alone. Chunks whose folder no record names are never
removed by an ingest; a warning says so.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.chunking import Chunk, chunk_document
from rag.config import RagConfig
from rag.embeddings import E5_NAME, Embedder, OpenAIEmbedder, embedder_for, languages_of
from rag.errors import DiskFull, EmptyIndex, is_disk_full
from rag.ingest_record import (
    IngestState,
    ingest_state,
    ingested_roots,
    last_ingest,
    mark_complete,
    mark_started,
    same_index,
)
from rag.loaders import Document, LoadResult, Skipped, load_documents
from rag.retrieval import rebuild_bm25
from rag.store import get_all, get_collection

__all__ = ["IngestReport", "IngestState", "Progress", "ingest_state", "ingested_roots", "last_ingest", "run"]

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    documents: int = 0
    chunks: int = 0
    """Chunks the documents yield now."""
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    total_in_store: int = 0
    seconds: float = 0.0
    root: str = ""
    """The folder ingested (absolute; a single file's folder)."""
    sources: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    """Files that could not be read, with the reason; everything else went in."""
    embedding_model: str = ""
    """The embedder's name, as the collection records it."""
    languages: dict[str, int] = field(default_factory=dict)
    """Chunks per language ("en", "zh", ...)."""

    @property
    def language_warning(self) -> str | None:
        """One line when chunks are in a language the embedding model does not handle (MiniLM: English only)."""
        known = languages_of(self.embedding_model)
        other = {lang: n for lang, n in self.languages.items() if known is not None and lang not in known}
        if not other:
            return None
        said = ", ".join(f"{n} in {lang}" for lang, n in sorted(other.items()))
        only = "English" if known == ("en",) else "/".join(known)
        return (f"{said} of {self.chunks} chunks: {self.embedding_model} is {only}-only, so those are found by their words "
                f"alone (BM25), not by their meaning. For them, ingest into a new workspace with --embedding-model "
                f"{E5_NAME}.")


def embed_text(chunk) -> str:
    """What is embedded: the heading path gives a short chunk its context."""
    return f"{chunk.heading_path}\n{chunk.text}" if chunk.heading_path else chunk.text


Progress = Callable[[str, int, int], None]
"""progress(phase, done, total): phase "load" (files read), "chunk" (documents chunked) or "embed"
(chunks embedded and written); called with done=0 when a phase starts, then after each step."""

LOW_SPACE = 32 * 2**20
"""Free bytes below which a failed write to the embedded store is put down to the full disk: Chroma's
compactor reports it only as "Failed to apply logs to the metadata segment"."""

PAGE = 5000
"""Ids per Chroma call that lists ids (SQLite limits the variables of one statement)."""


def run(
    cfg: RagConfig,
    docs_path: str | Path,
    embedder: Embedder | OpenAIEmbedder | None = None,
    progress: Progress | None = None,
    sync: bool = False,
    strict: bool = False,
) -> IngestReport:
    """Ingest `docs_path` (a folder, or one file) into the collection named by `cfg`.

    Args:
        progress: see `Progress`.
        sync: also remove chunks of files no longer in `docs_path` (not of files merely skipped, nor of
            files of other folders); with a single file, nothing else is removed.
        strict: fail on the first unreadable file instead of skipping it.

    Raises:
        DiskFull: the disk holding the index filled up; the record says the index is incomplete.
    """
    t0 = time.perf_counter()
    embedder = embedder or embedder_for(cfg)

    def phase(name: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(name, done, total)) if progress else None

    loaded = load_documents(docs_path, strict=strict, progress=phase("load"))  # validates before anything is touched
    chunks = _chunk_all(loaded.documents, cfg, embedder, phase("chunk"))
    report = IngestReport(documents=len(loaded.documents), chunks=len(chunks), root=loaded.root,
                          sources=[d.source for d in loaded.documents], skipped=loaded.skipped,
                          embedding_model=embedder.name, languages=dict(Counter(c.language for c in chunks)))
    try:
        _write(cfg, docs_path, loaded, chunks, embedder, report, sync, phase("embed"), t0)
    except Exception as e:
        if not (is_disk_full(e) or (not cfg.chroma_url and _out_of_space(cfg.workspace))):
            raise
        log.debug("writing the index failed", exc_info=True)
        where = f"the Chroma server at {cfg.chroma_url}" if cfg.chroma_url else str(cfg.workspace)
        raise DiskFull(f"{where}: the disk filled up while writing the index. Free some space there (`df -h`) and "
                       f"run `onboard ingest {docs_path} -w {cfg.workspace}` again; it continues where it stopped "
                       "(until then searches warn that the index is incomplete).") from None
    log.info("ingested %s", report)
    return report


def _chunk_all(docs: list[Document], cfg: RagConfig, embedder, progress: Callable[[int, int], None] | None
               ) -> list[Chunk]:
    chunks: list[Chunk] = []
    for n, d in enumerate(docs):
        if progress:
            progress(n, len(docs))
        chunks += chunk_document(d, embedder.count_tokens, cfg.chunk_tokens, cfg.chunk_overlap_sentences)
    if progress:
        progress(len(docs), len(docs))
    return chunks


def _write(cfg: RagConfig, docs_path, loaded: LoadResult, chunks: list[Chunk], embedder, report: IngestReport,
           sync: bool, progress: Callable[[int, int], None] | None, t0: float) -> None:
    """Mark the run started, bring the collection to what `chunks` say for this folder, mark it complete."""
    prev = last_ingest(cfg.workspace)
    try:
        col = get_collection(cfg, embedder.name)  # checks the embedding model before the record changes
    except EmptyIndex:
        col = None
    known = prev if same_index(prev, cfg) else None
    if col is not None and (known is None or "roots" not in known):  # no record of this collection since roots
        _adopt_unrooted(col, known)
    rec = mark_started(cfg, docs_path, embedder.name, prev)
    col = col or get_collection(cfg, embedder.name, create=True)

    wanted = {c.id: c for c in chunks}
    docs = {d.source for d in loaded.documents} | {s.path for s in loaded.skipped if s.left_out}
    keep = docs | {s.path for s in loaded.skipped}
    mine = get_all(col, ["metadatas"], where={"root": loaded.root})
    present, remove = set(), []
    for i, m in zip(mine["ids"], mine["metadatas"], strict=True):
        if i in wanted:
            present.add(i)
        elif m.get("source") in docs or (sync and not loaded.single_file and m.get("source") not in keep):
            remove.append(i)  # a changed file's old chunks; with sync, a deleted file's
    for i in range(0, len(remove), PAGE):
        col.delete(ids=remove[i : i + PAGE])
    report.removed = len(remove)
    # embedded shortest first: a batch of texts of one length wastes nothing on padding
    todo = sorted((c for c in wanted.values() if c.id not in present), key=lambda c: len(embed_text(c)))
    report.unchanged = len(wanted) - len(todo)
    if progress:
        progress(0, len(todo))
    for i in range(0, len(todo), cfg.batch_size):
        batch = todo[i : i + cfg.batch_size]
        col.upsert(
            ids=[c.id for c in batch],
            documents=[c.text for c in batch],
            metadatas=[c.metadata() for c in batch],
            embeddings=embedder.embed([embed_text(c) for c in batch]),
        )
        report.added += len(batch)
        if progress:
            progress(report.added, len(todo))
    report.total_in_store = rebuild_bm25(cfg, col)
    report.seconds = time.perf_counter() - t0
    mark_complete(cfg, rec, asdict(report))


def _adopt_unrooted(col, prev: dict | None) -> None:
    """Give chunks written before chunks carried `root` the folder the old record names (see the module
    docstring); without one, leave them and say so."""
    got = get_all(col, ["metadatas"])
    old = [(i, m) for i, m in zip(got["ids"], got["metadatas"], strict=True) if "root" not in m]
    if not old:
        return
    docs = Path(prev["docs"]) if prev and prev.get("docs") else None
    if docs is None:
        log.warning("%d chunks in collection %s come from an unknown folder (ingested by an older Onboard); they are "
                    "kept and never removed by an ingest. Re-ingest into a new collection to drop them.",
                    len(old), col.name)
        return
    root = str(docs.parent if docs.is_file() else docs)
    log.info("recording %s as the folder of %d chunks ingested by an older Onboard", root, len(old))
    for k in range(0, len(old), PAGE):
        part = old[k : k + PAGE]
        col.update(ids=[i for i, _ in part], metadatas=[{**m, "root": root} for _, m in part])


def _out_of_space(folder: Path) -> bool:
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    return shutil.disk_usage(probe).free < LOW_SPACE
