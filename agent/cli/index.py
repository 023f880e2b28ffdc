"""`onboard ingest` and `onboard search`: the document index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli.common import DEFAULT_WS, ChromaOpt, CollectionOpt, VerboseOpt, WorkspaceOpt
from agent.ui import console, err_console, handle_errors, setup, stage_bars
from rag.workspace import Workspace

PHASES = {"load": "loading files", "chunk": "chunking", "embed": "embedding chunks"}


@handle_errors
def ingest(
    docs: Annotated[Path, typer.Argument(help="Folder (or file): .md .txt .html .pdf .docx, FAQ .csv/.jsonl.")],
    workspace: WorkspaceOpt = DEFAULT_WS,
    collection: CollectionOpt = "onboard",
    chroma_url: ChromaOpt = None,
    sync: Annotated[bool, typer.Option(help="Also remove chunks of files deleted from DOCS.")] = False,
    strict: Annotated[bool, typer.Option(help="Stop at the first unreadable file instead of skipping it.")] = False,
    embedding_model: Annotated[str | None, typer.Option(
        help="all-MiniLM-L6-v2 (English), multilingual-e5-small (English, Chinese and ~100 more languages), or a "
             "sentence-transformers folder [default: the one the index was built with, else all-MiniLM-L6-v2]; an "
             "index keeps the model it was built with.")] = None,
    verbose: VerboseOpt = False,
):
    """Load, chunk, embed and store documents in the workspace's index (incremental, idempotent)."""
    setup(verbose)
    from agent import pipeline

    with stage_bars() as update:
        r = pipeline.ingest(Workspace(workspace), docs, collection=collection or "onboard", chroma_url=chroma_url,
                            sync=sync, strict=strict, embedding_model=embedding_model,
                            progress=lambda phase, d, n: update(PHASES[phase], d, n))
    console.print(
        f"{r.documents} documents, {r.chunks} chunks: {r.added} added, {r.unchanged} unchanged, {r.removed} removed "
        f"({r.total_in_store} in the index, {r.seconds:.1f} s; embedded with {r.embedding_model})"
    )
    if r.language_warning:
        err_console.print(f"[bold yellow]warning:[/] {escape(r.language_warning)}", highlight=False, markup=True,
                          soft_wrap=True)
    if r.skipped:
        table = Table("skipped file", "reason", title=f"{len(r.skipped)} file(s) skipped", title_style="yellow")
        for s in r.skipped:
            table.add_row(s.path, s.reason)
        console.print(table)


@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid (dense + BM25), dense or bm25.")] = "hybrid",
    source: Annotated[list[str] | None, typer.Option(help="Only these source files; repeatable.")] = None,
    language: Annotated[str | None, typer.Option(help="Only chunks in this language (en, zh).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only chunks with this tag; repeatable (any).")] = None,
    reranker: Annotated[Path | None, typer.Option(help="Cross-encoder folder to re-rank with.")] = None,
    workspace: WorkspaceOpt = DEFAULT_WS,
    collection: CollectionOpt = None,
    chroma_url: ChromaOpt = None,
    verbose: VerboseOpt = False,
):
    """Search the index and show the hits with their sources."""
    setup(verbose)
    from agent import pipeline

    filters = {k_: v for k_, v in {"source": source, "language": language, "tags": tag}.items() if v}
    if warning := pipeline.index_warning(Workspace(workspace), collection):
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, markup=True, soft_wrap=True)
    hits = pipeline.search(Workspace(workspace), query, k, filters, collection=collection, chroma_url=chroma_url,
                           mode=mode, reranker=str(reranker) if reranker else None)
    console.print(hit_table(hits, mode, reranked=reranker is not None))


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def hit_table(hits, mode: str, reranked: bool) -> Table:
    """The hits with scores a person can compare: the embedding cosine and the BM25 score of each (the fused
    rank score, the same 0.016 on every row, says nothing), and the cross-encoder's when it re-ranked."""
    table = Table("#", "cosine", "bm25", *(["reranker"] if reranked else []), "source", "page", "section", "snippet",
                  caption=f"order: {'the cross-encoder' if reranked else mode}; cosine: embedding similarity "
                          "(1 = same meaning); bm25: shared words (– where that retriever did not find it)")
    for n, h in enumerate(hits, 1):
        dense = h.metadata.get("dense_score", h.score if mode == "dense" else None)
        table.add_row(str(n), _num(dense), _num(h.metadata.get("bm25_score")), *([_num(h.score)] if reranked else []),
                      h.source, str(h.page or ""), h.heading_path, h.snippet)
    return table
