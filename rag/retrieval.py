"""Retrieval over the ingested chunks: the one search that serving and dataset building share.

Hybrid by default: dense (Chroma, cosine) and BM25 each return candidates, fused by reciprocal rank
fusion (Cormack et al. 2009: score = sum of 1 / (60 + rank)); an optional cross-encoder re-ranks the
fused candidates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

from rag import hyde
from rag.bm25 import BM25Index
from rag.config import RagConfig
from rag.embeddings import Embedder, OpenAIEmbedder, embedder_for, languages_of
from rag.errors import BadRagOption
from rag.filters import to_chroma_where
from rag.loaders import detect_language
from rag.store import get_all, get_collection

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


def rrf(rankings: list[list[str]], weights: list[float] | None = None, k: int = RRF_K) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion of several ranked id lists, best first."""
    scores: dict[str, float] = {}
    for ranking, w in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        if w <= 0:
            continue
        for rank, cid in enumerate(ranking, 1):
            scores[cid] = scores.get(cid, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


class Retriever:
    """Search the collection named by `cfg` (hybrid, dense or BM25; optional re-ranking)."""

    def __init__(self, cfg: RagConfig, embedder: Embedder | OpenAIEmbedder | None = None,
                 writer: hyde.Writer | None = None):
        """`writer`: the model that writes hypothetical answers, needed by `cfg.query_expansion` "hyde"."""
        if cfg.query_expansion == "hyde" and writer is None:
            raise BadRagOption("query_expansion hyde: no model to write the hypothetical answers. Serve a model "
                               "(the server lends its own), or leave query_expansion at none.")
        self.cfg = cfg
        self.embedder = embedder or embedder_for(cfg)
        self.writer = writer if cfg.query_expansion == "hyde" else None
        self._col = None
        self._count: int | None = None

    @property
    def collection(self):
        if self._col is None:
            self._col = get_collection(self.cfg, self.embedder.name)
            if warning := self.index_warning:
                log.warning("%s", warning)
        return self._col

    @property
    def index_warning(self) -> str | None:
        """One line saying the index is incomplete (an ingest of this collection started and did not
        finish: killed, crashed, disk full), else None. Read from the ingest record at each call (a
        long-lived retriever sees a later ingest complete); logged when the collection is first opened."""
        from rag.ingest_record import ingest_state

        state = ingest_state(self.cfg.workspace)
        return state.warning() if state.collection == self.cfg.collection else None

    def count(self) -> int:
        self._count = self.collection.count()
        return self._count

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
        fetch = max(4 * k, 20) if (mode == "hybrid" or self.cfg.reranker) else k
        if self._count is None or self._count < fetch:  # small or new collections: look again
            self.count()
        if not query.strip() or self._count == 0:
            return []
        known: dict[str, Hit] = {}
        dense: list[str] = []
        rankings: list[list[str]] = []
        weights: list[float] = []
        hypothesis = self.writer(hyde.messages(query)).strip() if self.writer else ""
        dense_weight = self._dense_weight(query) if mode == "hybrid" else 1.0
        if mode == "dense" or (mode == "hybrid" and dense_weight > 0):
            vec = self.embedder.embed_query(query)
            vecs = [vec, _mean(vec, self.embedder.embed([hypothesis])[0])] if hypothesis else [vec]
            for i, v in enumerate(vecs):
                ranking = []
                for h in self._dense(v, fetch, filters):
                    if i == 0:  # a hit's cosine is the question's own
                        known[h.chunk_id] = h
                    ranking.append(h.chunk_id)
                    known.setdefault(h.chunk_id, h)
                rankings.append(ranking)
                weights.append(dense_weight)
            dense = rankings[0]
        if mode in ("hybrid", "bm25"):
            index = self.bm25
            for i, text in enumerate([query, f"{query}\n{hypothesis}"] if hypothesis else [query]):
                ranking = []
                for pos, score in index.search(text, fetch, filters):
                    cid = index.ids[pos]
                    ranking.append(cid)
                    if cid not in known:
                        meta = index.metas[pos]
                        known[cid] = Hit(cid, meta.get("source", ""), meta.get("heading_path", ""), index.texts[pos],
                                         0.0, dict(meta))
                    if i == 0:
                        known[cid].metadata["bm25_score"] = score
                rankings.append(ranking)
                weights.append(1.0)
        if len(rankings) == 1 and mode == "dense":
            ranked = [(cid, known[cid].score) for cid in dense]
        elif len(rankings) == 1 and mode == "bm25":
            ranked = [(cid, known[cid].metadata["bm25_score"]) for cid in rankings[0]]
        else:
            ranked = rrf(rankings, weights)
        hits = []
        for cid, score in ranked[: fetch if self.cfg.reranker else k]:
            h = known[cid]
            if mode != "bm25" and "dense_score" not in h.metadata and cid in dense:
                h.metadata["dense_score"] = h.score
            h.score = score
            if hypothesis:
                h.metadata["hypothesis"] = hypothesis  # what the model wrote, for the caller to see
            hits.append(h)
        if self.cfg.reranker and hits:
            scores = self.reranker.predict([(query, h.text) for h in hits], show_progress_bar=False)
            for h, s in zip(hits, scores, strict=True):
                h.metadata["fused_score"], h.score = h.score, float(s)
            hits.sort(key=lambda h: -h.score)
        return hits[:k]

    def _dense_weight(self, query: str) -> float:
        """1 for queries in a language the embedding model was trained on, else `cfg.dense_weight_other`."""
        langs = self.cfg.embedding_languages
        if langs is None:
            langs = languages_of(self.embedder.name)
        return 1.0 if langs is None or detect_language(query) in langs else self.cfg.dense_weight_other

    def _dense(self, vec: list[float], n: int, filters: dict | None) -> list[Hit]:
        res = self.collection.query(
            query_embeddings=[vec],
            n_results=min(n, self._count or n),
            where=to_chroma_where(filters),
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(cid, meta.get("source", ""), meta.get("heading_path", ""), doc, 1.0 - dist, dict(meta))
            for cid, doc, meta, dist in zip(
                res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
            )
        ]


def _mean(a: list[float], b: list[float]) -> list[float]:
    """The normalised mean of two unit vectors."""
    v = [x + y for x, y in zip(a, b, strict=True)]
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / norm for x in v]


def rebuild_bm25(cfg: RagConfig, collection) -> int:
    """Rebuild the BM25 index from everything in the collection; returns the number of chunks."""
    got = get_all(collection, ["documents", "metadatas"])
    BM25Index(cfg.bm25_path).build(got["ids"], got["documents"], got["metadatas"])
    return len(got["ids"])
