"""Ingest a folder of documents into the vector store, incrementally and idempotently.

Chunk ids are content hashes: re-ingesting unchanged files adds nothing, a changed file's stale
chunks are removed, and chunks are written in batches so an interrupted run simply resumes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.chunking import Chunk, chunk_document
from rag.config import RagConfig
from rag.embeddings import Embedder
from rag.loaders import load_documents
from rag.store import get_collection

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


def chunk_documents(cfg: RagConfig, docs_path: str | Path, embedder: Embedder) -> list[Chunk]:
    """Load and chunk every document under `docs_path` exactly as ingestion does."""
    chunks: list[Chunk] = []
    for doc in load_documents(docs_path):
        chunks.extend(chunk_document(doc, embedder.count_tokens, cfg.chunk_tokens, cfg.chunk_overlap_sentences))
    return chunks


def embed_text(chunk: Chunk) -> str:
    """What is embedded: the heading path gives a short chunk its context."""
    return f"{chunk.heading_path}\n{chunk.text}" if chunk.heading_path else chunk.text


def run(
    cfg: RagConfig,
    docs_path: str | Path,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Ingest `docs_path` into the collection named by `cfg`.

    Args:
        progress: called with (chunks written, chunks to write) after each batch.
    """
    t0 = time.perf_counter()
    embedder = embedder or Embedder(cfg.embedding_model, cfg.batch_size)
    docs = load_documents(docs_path)  # validates the folder before anything is touched
    chunks = [
        c for d in docs for c in chunk_document(d, embedder.count_tokens, cfg.chunk_tokens, cfg.chunk_overlap_sentences)
    ]
    col = get_collection(cfg, embedder.name, create=True)

    report = IngestReport(documents=len(docs), chunks=len(chunks), sources=[d.source for d in docs])
    wanted = {c.id: c for c in chunks}
    present: set[str] = set()
    for d in docs:
        got = col.get(where={"source": d.source}, include=[])
        stale = [i for i in got["ids"] if i not in wanted]
        present.update(i for i in got["ids"] if i in wanted)
        if stale:
            col.delete(ids=stale)
            report.removed += len(stale)
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
    report.total_in_store = col.count()
    report.seconds = time.perf_counter() - t0
    _record(cfg, docs_path, embedder, report)
    log.info("ingested %s", report)
    return report


def _record(cfg: RagConfig, docs_path, embedder: Embedder, report: IngestReport) -> None:
    """Remember what was ingested, so later stages (dataset building) find the same documents."""
    rec = {
        "docs": str(Path(docs_path).resolve()),
        "collection": cfg.collection,
        "embedding_model": embedder.name,
        "chunk_tokens": cfg.chunk_tokens,
        "chunk_overlap_sentences": cfg.chunk_overlap_sentences,
        "report": asdict(report),
    }
    tmp = cfg.workspace / "ingest.json.tmp"
    tmp.write_text(json.dumps(rec, indent=2, ensure_ascii=False))
    tmp.replace(cfg.workspace / "ingest.json")


def last_ingest(workspace: str | Path) -> dict | None:
    """What the last `ingest` into this workspace recorded, or None."""
    f = Path(workspace) / "ingest.json"
    return json.loads(f.read_text()) if f.exists() else None
