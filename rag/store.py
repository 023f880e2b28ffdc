"""The Chroma vector store. Embeddings are computed by `Embedder`, never by Chroma (its default
embedding function downloads a model at run time)."""

from __future__ import annotations

import logging
import os

from rag.config import RagConfig
from rag.errors import EmbeddingMismatch, EmptyIndex

log = logging.getLogger(__name__)


def client(cfg: RagConfig):
    """An embedded Chroma client persisted under the workspace."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings

    cfg.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(cfg.chroma_path), settings=Settings(anonymized_telemetry=False))


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
            raise EmptyIndex(
                f"no index '{cfg.collection}' in {cfg.chroma_path}. Run `onboard ingest DOCS "
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
