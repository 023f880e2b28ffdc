"""Retrieval over the ingested chunks: the one search that serving and dataset building share.

Hybrid by default: dense (Chroma, cosine) and BM25 each return candidates, fused by reciprocal rank
fusion (Cormack et al. 2009: score = sum of 1 / (60 + rank)); an optional cross-encoder re-ranks the
fused candidates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

from rag.bm25 import BM25Index
from rag.config import RagConfig
from rag.embeddings import Embedder, OpenAIEmbedder, embedder_for
from rag.filters import to_chroma_where
from rag.store import get_collection

log = logging.getLogger(__name__)

RRF_K = 60


@dataclass
class Hit:
    """One retrieved chunk, with everything needed to cite it."""

    chunk_id: str
    source: str
    heading_path: str
    text: str
    score: float
    """Higher is better: cosine similarity (dense), BM25 score (bm25), fused RRF score (hybrid) or the
    cross-encoder's score (when re-ranked)."""
    metadata: dict = field(default_factory=dict)

    @property
    def page(self) -> int:
        """1-based page (PDFs), 0 when the source has no pages."""
        return int(self.metadata.get("page") or 0)

    @property
    def snippet(self) -> str:
        t = " ".join(self.text.split())
        return t if len(t) <= 160 else t[:157] + "..."

    def citation(self) -> dict:
        return {
            "id": self.chunk_id,
            "source": self.source,
            "heading_path": self.heading_path,
            "page": self.page,
            "score": round(self.score, 4),
            "snippet": self.snippet,
        }


def rrf(rankings: list[list[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of several ranked id lists, best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, 1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Retriever:
    """Search the collection named by `cfg` (hybrid, dense or BM25; optional re-ranking)."""

    def __init__(self, cfg: RagConfig, embedder: Embedder | OpenAIEmbedder | None = None):
        self.cfg = cfg
        self.embedder = embedder or embedder_for(cfg)
        self._col = None

    @property
    def collection(self):
        if self._col is None:
            self._col = get_collection(self.cfg, self.embedder.name)
        return self._col

    def count(self) -> int:
        return self.collection.count()

    @cached_property
    def bm25(self) -> BM25Index:
        """The BM25 index, rebuilt from the collection if it is missing or out of date."""
        index = BM25Index(self.cfg.bm25_path)
        if not index.load() or len(index) != self.count():
            log.info("BM25 index missing or stale; rebuilding from the collection")
            rebuild_bm25(self.cfg, self.collection)
            index.load()
        return index

    @cached_property
    def reranker(self):
        from sentence_transformers import CrossEncoder

        return CrossEncoder(self.cfg.reranker, device="cpu")

    def search(self, query: str, k: int = 4, filters: dict | None = None, mode: str | None = None) -> list[Hit]:
        """Top-k chunks for `query`, best first.

        Args:
            filters: metadata filter (see `rag.filters`), e.g. {"language": "zh", "tags": "returns"}.
            mode: override `cfg.mode` for this call ("hybrid", "dense" or "bm25").
        """
        mode = mode or self.cfg.mode
        if not query.strip() or self.count() == 0:
            return []
        fetch = max(4 * k, 20) if (mode == "hybrid" or self.cfg.reranker) else k
        dense, bm25 = [], []
        if mode in ("hybrid", "dense"):
            dense = self._dense(query, fetch, filters)
        if mode in ("hybrid", "bm25"):
            bm25 = self.bm25.search(query, fetch, filters)
        if mode == "dense":
            ranked = [(h.chunk_id, h.score) for h in dense]
        elif mode == "bm25":
            ranked = bm25
        else:
            ranked = rrf([[h.chunk_id for h in dense], [cid for cid, _ in bm25]])
        known = {h.chunk_id: h for h in dense}
        hits = self._hits(ranked[: fetch if self.cfg.reranker else k], known)
        if self.cfg.reranker and hits:
            scores = self.reranker.predict([(query, h.text) for h in hits], show_progress_bar=False)
            for h, s in zip(hits, scores, strict=True):
                h.metadata["fused_score"], h.score = h.score, float(s)
            hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def _dense(self, query: str, n: int, filters: dict | None) -> list[Hit]:
        res = self.collection.query(
            query_embeddings=self.embedder.embed([query]),
            n_results=min(n, self.count()),
            where=to_chroma_where(filters),
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(cid, meta.get("source", ""), meta.get("heading_path", ""), doc, 1.0 - dist, dict(meta))
            for cid, doc, meta, dist in zip(
                res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
            )
        ]

    def _hits(self, ranked: list[tuple[str, float]], known: dict[str, Hit]) -> list[Hit]:
        missing = [cid for cid, _ in ranked if cid not in known]
        if missing:
            got = self.collection.get(ids=missing, include=["documents", "metadatas"])
            for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
                known[cid] = Hit(cid, meta.get("source", ""), meta.get("heading_path", ""), doc, 0.0, dict(meta))
        hits = []
        for cid, score in ranked:
            if cid in known:
                h = known[cid]
                if "dense_score" not in h.metadata and h.score:
                    h.metadata["dense_score"] = h.score
                h.score = score
                hits.append(h)
        return hits


def rebuild_bm25(cfg: RagConfig, collection) -> int:
    """Rebuild the BM25 index from everything in the collection; returns the number of chunks."""
    got = collection.get(include=["documents", "metadatas"])
    BM25Index(cfg.bm25_path).build(got["ids"], got["documents"], got["metadatas"])
    return len(got["ids"])
