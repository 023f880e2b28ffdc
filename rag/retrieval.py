"""Retrieval over the ingested chunks: the one search function serving and dataset building share."""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.config import RagConfig
from rag.embeddings import Embedder
from rag.store import get_collection


@dataclass
class Hit:
    """One retrieved chunk, with everything needed to cite it."""

    chunk_id: str
    source: str
    heading_path: str
    text: str
    score: float
    """Cosine similarity in [-1, 1]; higher is closer."""
    metadata: dict = field(default_factory=dict)

    @property
    def snippet(self) -> str:
        t = " ".join(self.text.split())
        return t if len(t) <= 160 else t[:157] + "..."

    def citation(self) -> dict:
        return {
            "id": self.chunk_id,
            "source": self.source,
            "heading_path": self.heading_path,
            "score": round(self.score, 4),
            "snippet": self.snippet,
        }


class Retriever:
    """Dense retrieval from the Chroma collection named by `cfg`."""

    def __init__(self, cfg: RagConfig, embedder: Embedder | None = None):
        self.cfg = cfg
        self.embedder = embedder or Embedder(cfg.embedding_model, cfg.batch_size)
        self._col = None

    @property
    def collection(self):
        if self._col is None:
            self._col = get_collection(self.cfg, self.embedder.name)
        return self._col

    def count(self) -> int:
        return self.collection.count()

    def search(self, query: str, k: int = 4, filters: dict | None = None) -> list[Hit]:
        """Top-k chunks for `query`, best first. `filters` is a Chroma `where` on chunk metadata."""
        col = self.collection
        n = min(k, col.count())
        if n == 0 or not query.strip():
            return []
        res = col.query(
            query_embeddings=self.embedder.embed([query]),
            n_results=n,
            where=filters or None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(cid, meta.get("source", ""), meta.get("heading_path", ""), doc, 1.0 - dist, meta)
            for cid, doc, meta, dist in zip(
                res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
            )
        ]
