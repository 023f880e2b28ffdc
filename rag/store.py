"""The Chroma vector store. Embeddings are computed by `Embedder`, never by Chroma (its default
embedding function downloads a model at run time)."""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

from rag.config import RagConfig
from rag.errors import EmbeddingMismatch, EmptyIndex, RagError

log = logging.getLogger(__name__)


def client(cfg: RagConfig):
    """A Chroma client: an HTTP client for `cfg.chroma_url`, else an embedded one under the workspace."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if cfg.chroma_url:
        u = urlparse(cfg.chroma_url)
        try:
            return chromadb.HttpClient(host=u.hostname or "127.0.0.1", port=u.port or 8000, ssl=u.scheme == "https",
                                       settings=settings)
        except Exception as e:  # chromadb raises ValueError/ConnectionError variants depending on version
            raise RagError(f"cannot reach the Chroma server at {cfg.chroma_url} ({e}). Start it with "
                           f"`chroma run --path DIR --port {u.port or 8000}` or unset ONBOARD_CHROMA_URL.") from None
    cfg.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(cfg.chroma_path), settings=settings)


def get_collection(cfg: RagConfig, embedding_model: str, create: bool = False):
    """Open the collection, checking it was built with `embedding_model`.

    Raises:
        EmptyIndex: it does not exist and `create` is False.
        EmbeddingMismatch: it was built with another embedding model.
    """
    c = client(cfg)
    names = [getattr(x, "name", x) for x in c.list_collections()]
    if cfg.collection not in names:
        if not create:
            where = cfg.chroma_url or cfg.chroma_path
            raise EmptyIndex(
                f"no index '{cfg.collection}' in {where}. Run `onboard ingest DOCS "
                f"--workspace {cfg.workspace}` first."
            )
        log.info("creating collection %s (embeddings: %s)", cfg.collection, embedding_model)
        return c.create_collection(
            cfg.collection,
            metadata={"embedding_model": embedding_model, "hnsw:space": "cosine"},
            embedding_function=None,
        )
    col = c.get_collection(cfg.collection, embedding_function=None)
    built_with = (col.metadata or {}).get("embedding_model")
    if built_with and built_with != embedding_model:
        raise EmbeddingMismatch(
            f"the index '{cfg.collection}' was built with embedding model '{built_with}', not "
            f"'{embedding_model}'. Query with the same model, or re-ingest into a new collection "
            f"(--collection NAME)."
        )
    return col


def get_all(collection, include: list[str], page: int = 5000, where: dict | None = None) -> dict:
    """Every record of the collection (matching `where`, a Chroma filter), read in pages (one big `get`
    overflows SQLite's variable limit at ~100k chunks)."""
    out: dict = {"ids": [], **{k: [] for k in include}}
    offset = 0
    while True:
        got = collection.get(where=where, include=include, limit=page, offset=offset)
        out["ids"].extend(got["ids"])
        for k in include:
            out[k].extend(got[k])
        if len(got["ids"]) < page:
            return out
        offset += page
