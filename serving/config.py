"""Serving configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rag.prompt import DEFAULT_K

MODEL_FILE = "onboard_model.json"
"""What `onboard merge` writes beside a model: its base, training run and dataset."""


def trained_context_chunks(model: Path) -> int | None:
    """Chunks per prompt in the data the model was fine-tuned on (RAFT prompts hold distractors + 1)."""
    try:
        info = json.loads((Path(model) / MODEL_FILE).read_text())
        return int(info["training_run"]["dataset"]["context_chunks"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    rag_k: int | None = None
    """Chunks retrieved per request and put in the system prompt (0 disables RAG). None: as many as
    the model's training prompts held (recorded in its onboard_model.json), else rag.DEFAULT_K."""
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
        if self.rag_k is None:
            self.rag_k = trained_context_chunks(self.model) or DEFAULT_K

    @property
    def served_name(self) -> str:
        return self.model_name or self.model.resolve().name
