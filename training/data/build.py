"""Build the SFT dataset from the ingested documents.

    onboard data build --workspace .onboard

Explicit Q/A pairs are found in the documents (training/data/faq.py); each is traced to the chunk
that holds it (by character offset, with the same chunker ingestion used, so chunk ids match the
index). By default each question is wrapped in the very RAG prompt the server builds, with the
chunks our retriever returns for it: the model is trained on what it will be served.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rag import DEFAULT_K, RagConfig, Retriever, build_rag_messages
from rag.chunking import Chunk, chunk_document
from rag.embeddings import embedder_for
from rag.ingest import last_ingest
from rag.loaders import load_documents
from training.data.faq import extract_qa
from training.data.formats import read_messages_file, write_jsonl
from training.errors import NoExamples

log = logging.getLogger(__name__)


@dataclass
class DataBuildConfig:
    """Where the documents and index are, and how the SFT set is made."""

    workspace: Path
    """Workspace holding the index; datasets are written to `<workspace>/data/`."""
    docs: Path | None = None
    """Documents folder; default: the folder the last `onboard ingest` used."""
    extra_files: list[Path] = field(default_factory=list)
    """User JSONL datasets (messages or alpaca) added to the training split as they are."""
    rag_context: bool = True
    """Put retrieved chunks in each example's system prompt, exactly as serving does."""
    k: int = DEFAULT_K
    """Chunks retrieved per question when rag_context is on (serving uses the same default)."""
    test_fraction: float = 0.15
    """Share of document-derived examples held out for evaluation (at least 1)."""
    seed: int = 0

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace)
        self.docs = Path(self.docs) if self.docs else None
        self.extra_files = [Path(p) for p in self.extra_files]
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1) (got {self.test_fraction})")

    @property
    def out_dir(self) -> Path:
        return self.workspace / "data"


@dataclass
class DataBuildResult:
    train_file: Path
    test_file: Path
    train: int
    test: int
    by_rule: dict
    by_language: dict


def _chunk_at(chunks: list[Chunk], offset: int) -> Chunk:
    inside = [c for c in chunks if c.start <= offset < c.end]
    return inside[0] if inside else min(chunks, key=lambda c: abs(c.start - offset))


def _is_test(key: str, cfg: DataBuildConfig) -> bool:
    h = int(hashlib.sha256(f"{cfg.seed}:{key}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < cfg.test_fraction


def run(cfg: DataBuildConfig) -> DataBuildResult:
    """Write `train.jsonl`, `test.jsonl` and `stats.json` under `<workspace>/data/`."""
    rec = last_ingest(cfg.workspace) or {}
    docs_path = cfg.docs or (Path(rec["docs"]) if rec.get("docs") else None)
    if docs_path is None:
        raise NoExamples(
            f"no documents known for workspace {cfg.workspace}. Run `onboard ingest DOCS` first or pass --docs."
        )
    rag_cfg = RagConfig.from_workspace(cfg.workspace)
    embedder = embedder_for(rag_cfg)
    retriever = Retriever(rag_cfg, embedder) if cfg.rag_context else None
    user_rows = [m for f in cfg.extra_files for m in read_messages_file(f)]  # fail fast on bad input

    examples = []
    for doc in load_documents(docs_path).documents:
        chunks = chunk_document(doc, embedder.count_tokens, rag_cfg.chunk_tokens, rag_cfg.chunk_overlap_sentences)
        for qa in extract_qa(doc.text):
            chunk = _chunk_at(chunks, qa.start)
            question = [{"role": "user", "content": qa.question}]
            hits = retriever.search(qa.question, cfg.k) if retriever else []
            messages = build_rag_messages(question, hits) + [{"role": "assistant", "content": qa.answer}]
            examples.append({
                "messages": messages,
                "meta": {
                    "chunk_id": chunk.id, "doc_id": doc.id, "source": doc.source, "rule": qa.rule,
                    "language": doc.language, "retrieved": [h.chunk_id for h in hits],
                },
            })
    if not examples and not user_rows:
        raise NoExamples(
            f"no question/answer pairs found in {docs_path}. Add an FAQ (lines starting `Q:`/`A:` or "
            "`问：`/`答：`, or headings ending in `?`), or pass your own dataset with --extra FILE.jsonl."
        )

    test = [e for e in examples if _is_test(e["meta"]["chunk_id"] + e["messages"][-2]["content"], cfg)]
    if not test and cfg.test_fraction > 0 and len(examples) > 1:
        test = [examples[-1]]
    train = [e for e in examples if e not in test]
    train += [{"messages": m, "meta": {"rule": "user-file"}} for m in user_rows]

    out = cfg.out_dir
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "test.jsonl", test)
    result = DataBuildResult(
        train_file=out / "train.jsonl", test_file=out / "test.jsonl", train=len(train), test=len(test),
        by_rule=dict(Counter(e["meta"]["rule"] for e in train + test)),
        by_language=dict(Counter(e["meta"].get("language", "user") for e in train + test)),
    )
    stats = {"docs": str(docs_path), "rag_context": cfg.rag_context, "k": cfg.k, "train": result.train,
             "test": result.test, "by_rule": result.by_rule, "by_language": result.by_language}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False))
    log.info("dataset: %s", stats)
    return result
