"""Ingest a folder of documents into the vector store, incrementally, idempotently and kill-safely.

Chunk ids are content hashes: re-ingesting unchanged files adds nothing, a changed file's stale
chunks are removed, and with `sync` the chunks of deleted files go too. Chunks are written in
batches with `upsert`, so a run killed midway leaves only whole, correct chunks and the next run
adds the rest: the result is the same collection a clean run makes. The BM25 index is rebuilt from
the collection at the end (and by the retriever whenever it finds it stale).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.chunking import chunk_document
from rag.config import RagConfig
from rag.embeddings import Embedder, OpenAIEmbedder, embedder_for
from rag.io import atomic_write_json
from rag.loaders import Skipped, load_documents
from rag.retrieval import rebuild_bm25
from rag.store import get_all, get_collection
from rag.workspace import Workspace

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
    sources: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    """Files that could not be read, with the reason; everything else went in."""


def embed_text(chunk) -> str:
    """What is embedded: the heading path gives a short chunk its context."""
    return f"{chunk.heading_path}\n{chunk.text}" if chunk.heading_path else chunk.text


def run(
    cfg: RagConfig,
    docs_path: str | Path,
    embedder: Embedder | OpenAIEmbedder | None = None,
    progress: Callable[[int, int], None] | None = None,
    sync: bool = False,
    strict: bool = False,
) -> IngestReport:
    """Ingest `docs_path` into the collection named by `cfg`.

    Args:
        progress: called with (chunks written, chunks to write) after each batch.
        sync: also remove chunks of files no longer under `docs_path` (not of files merely skipped).
        strict: fail on the first unreadable file instead of skipping it.
    """
    t0 = time.perf_counter()
    embedder = embedder or embedder_for(cfg)
    loaded = load_documents(docs_path, strict=strict)  # validates the folder before anything is touched
    docs = loaded.documents
    chunks = [
        c for d in docs for c in chunk_document(d, embedder.count_tokens, cfg.chunk_tokens, cfg.chunk_overlap_sentences)
    ]
    col = get_collection(cfg, embedder.name, create=True)

    report = IngestReport(documents=len(docs), chunks=len(chunks), sources=[d.source for d in docs],
                          skipped=loaded.skipped)
    wanted = {c.id: c for c in chunks}
    present: set[str] = set()
    for d in docs:
        got = col.get(where={"source": d.source}, include=[])
        stale = [i for i in got["ids"] if i not in wanted]
        present.update(i for i in got["ids"] if i in wanted)
        if stale:
            col.delete(ids=stale)
            report.removed += len(stale)
    if sync:
        keep = set(report.sources) | {s.path for s in loaded.skipped}
        everything = get_all(col, ["metadatas"])
        gone = [i for i, m in zip(everything["ids"], everything["metadatas"], strict=True) if m.get("source") not in keep]
        if gone:
            col.delete(ids=gone)
            report.removed += len(gone)
    todo = [c for c in wanted.values() if c.id not in present]
    report.unchanged = len(wanted) - len(todo)

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
    _record(cfg, docs_path, embedder, report)
    log.info("ingested %s", report)
    return report


def _record(cfg: RagConfig, docs_path, embedder, report: IngestReport) -> None:
    """Remember what was ingested, so later stages (dataset building) find the same documents."""
    rec = {
        "docs": str(Path(docs_path).resolve()),
        "collection": cfg.collection,
        "chroma_url": cfg.chroma_url,
        "embedding_model": cfg.embedding_model,
        "embedding_name": embedder.name,
        "embedding_url": cfg.embedding_url,
        "chunk_tokens": cfg.chunk_tokens,
        "chunk_overlap_sentences": cfg.chunk_overlap_sentences,
        "report": asdict(report),
    }
    atomic_write_json(Workspace(cfg.workspace).ingest_record, rec)


def last_ingest(workspace: str | Path) -> dict | None:
    """What the last `ingest` into this workspace recorded, or None."""
    f = Workspace(workspace).ingest_record
    return json.loads(f.read_text()) if f.exists() else None
