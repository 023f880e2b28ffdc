"""Configuration of the RAG layer: where the index lives, how documents are chunked and embedded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_COLLECTION = "onboard"


@dataclass
class RagConfig:
    """Where the vector store lives and how it is built and queried."""

    workspace: Path
    """Workspace folder; the Chroma database is kept in `<workspace>/chroma`."""
    collection: str = DEFAULT_COLLECTION
    """Chroma collection name."""
    embedding_model: str | None = None
    """A sentence-transformers model folder; None means the offline all-MiniLM-L6-v2 package."""
    chunk_tokens: int = 200
    """Target chunk size, in tokens of the embedding model's tokenizer."""
    chunk_overlap_sentences: int = 1
    """Sentences repeated at the start of the next chunk when a long section is split."""
    batch_size: int = 64
    """Texts embedded per batch."""

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace)
        if self.chunk_tokens < 32:
            raise ValueError(f"chunk_tokens must be at least 32 (got {self.chunk_tokens})")

    @property
    def chroma_path(self) -> Path:
        return self.workspace / "chroma"
