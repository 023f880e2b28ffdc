"""Configuration of the RAG layer: where the index lives, how documents are chunked, embedded and searched."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.errors import BadRagOption
from rag.workspace import Workspace

DEFAULT_COLLECTION = "onboard"
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


def check_collection_name(name: str) -> None:
    """Refuse a name Chroma would refuse (the rules of every Chroma version: S3 bucket names), before
    it becomes a folder name under the workspace (`bm25/<name>`).

    Raises:
        BadRagOption: the name, the flag and the rule.
    """
    if not _COLLECTION_NAME.fullmatch(name) or ".." in name or _IPV4.fullmatch(name):
        raise BadRagOption(
            f"--collection {name!r}: not a valid collection name. Use 3-63 letters, digits, '.', '_' or '-', "
            f"starting and ending with a letter or digit, without '..' and not an IP address (e.g. shop-docs)."
        )


@dataclass
class RagConfig:
    """Where the vector store lives and how it is built and queried."""

    workspace: Path
    """Workspace folder; the embedded Chroma database is `<workspace>/chroma`, the BM25 index `<workspace>/bm25`."""
    collection: str = DEFAULT_COLLECTION
    """Chroma collection name."""
    chroma_url: str | None = None
    """A `chroma run` server (e.g. http://127.0.0.1:8001) instead of the embedded store. Env: ONBOARD_CHROMA_URL."""
    embedding_model: str | None = None
    """A sentence-transformers model folder (None: the offline all-MiniLM-L6-v2), or with `embedding_url`,
    the model name the endpoint serves."""
    embedding_url: str | None = None
    """An OpenAI-compatible API base (e.g. http://host:8000/v1) whose /embeddings endpoint embeds. Env:
    ONBOARD_EMBEDDING_URL; its key: ONBOARD_EMBEDDING_API_KEY."""
    embedding_languages: list[str] | None = None
    """Languages the embedding model handles well ("en", "zh"); None: all, except for the default
    MiniLM, which is English-only. Hybrid search trusts dense rankings less for other languages."""
    dense_weight_other: float = 0.0
    """RRF weight of the dense ranking for queries in a language the embedding model does not handle."""
    reranker: str | None = None
    """A cross-encoder model folder; when set, the fused candidates are re-ranked by it."""
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    """hybrid: dense + BM25 fused by reciprocal rank fusion."""
    query_expansion: Literal["none", "hyde"] = "none"
    """hyde: a model writes a hypothetical answer that joins the query (rag/hyde.py); the retriever needs a writer
    (the server passes its engine)."""
    chunk_tokens: int = 200
    """Target chunk size, in tokens of the embedding model's tokenizer."""
    chunk_overlap_sentences: int = 1
    """Sentences repeated at the start of the next chunk when a long section is split."""
    batch_size: int = 64
    """Texts embedded and written per batch (multilingual-e5-small runs them through its model 4 at a time within
    it: faster on a CPU, rag/e5.py)."""

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace)
        self.chroma_url = self.chroma_url or os.environ.get("ONBOARD_CHROMA_URL") or None
        self.embedding_url = self.embedding_url or os.environ.get("ONBOARD_EMBEDDING_URL") or None
        if self.chunk_tokens < 32:
            raise BadRagOption(f"chunk_tokens must be at least 32 (got {self.chunk_tokens})")
        check_collection_name(self.collection)
        if self.mode not in ("hybrid", "dense", "bm25"):
            raise BadRagOption(f"mode must be hybrid, dense or bm25 (got {self.mode!r})")
        if self.query_expansion not in ("none", "hyde"):
            raise BadRagOption(f"query_expansion must be none or hyde (got {self.query_expansion!r})")

    @classmethod
    def from_workspace(cls, workspace: str | Path, **overrides) -> RagConfig:
        """The config the last `ingest` into `workspace` used (collection, store, embedding model,
        chunking), so every later reader queries the index the way it was built. `overrides` win."""

        from rag.ingest import last_ingest

        rec = last_ingest(workspace) or {}
        keys = ("collection", "chroma_url", "embedding_model", "embedding_url", "chunk_tokens", "chunk_overlap_sentences")
        found = {k: rec[k] for k in keys if rec.get(k) is not None}
        return cls(workspace=Path(workspace), **{**found, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def chroma_path(self) -> Path:
        return Workspace(self.workspace).chroma

    @property
    def bm25_path(self) -> Path:
        return Workspace(self.workspace).bm25(self.collection)
