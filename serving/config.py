"""Serving configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag.prompt import DEFAULT_K


@dataclass
class ServeConfig:
    """What to serve and how."""

    model: Path
    """Model folder (a merged model, or any Hugging Face causal LM folder)."""
    model_name: str | None = None
    """Model id reported by /v1/models and accepted in requests; default: the folder name."""
    workspace: Path | None = None
    """Workspace whose Chroma index feeds RAG; None serves without retrieval."""
    collection: str | None = None
    """Chroma collection; default: the one the workspace was ingested into."""
    rag_k: int = DEFAULT_K
    """Chunks retrieved per request and put in the system prompt (0 disables RAG); keep it equal to
    the k the training data was built with."""
    host: str = "127.0.0.1"
    port: int = 8000
    max_new_tokens: int = 256
    """Default and ceiling for a request's max_tokens."""
    max_request_bytes: int = 1_000_000
    """Larger request bodies are refused with 413."""
    threads: int | None = None
    """torch CPU threads; None leaves torch's default."""

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.workspace = Path(self.workspace) if self.workspace else None

    @property
    def served_name(self) -> str:
        return self.model_name or self.model.resolve().name
