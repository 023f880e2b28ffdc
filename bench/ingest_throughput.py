"""Ingest throughput on 2 CPU cores: chunks/s of ~300-token chunks with all-MiniLM-L6-v2 (or another embedder).

    .venv/bin/python bench/ingest_throughput.py [N_CHUNKS] [--embedding-model multilingual-e5-small]

Real text (the Debian FAQ, English and Chinese) is packed into ~300-token chunks. Measured side by
side in one process: the full `rag.ingest` (load, chunk, batched embedding, Chroma upsert, BM25
build) against a baseline that embeds and writes one chunk at a time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_corpus  # noqa: E402


def main(n_chunks: int = 600, embedding_model: str | None = None) -> None:
    import torch

    torch.set_num_threads(2)
    from rag import RagConfig, ingest
    from rag.chunking import chunk_document
    from rag.embeddings import embedder_for
    from rag.ingest import embed_text
    from rag.loaders import load_documents
    from rag.store import get_collection

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "faq"
        write_corpus(src)
        emb = embedder_for(RagConfig(workspace=Path(tmp), embedding_model=embedding_model))
        emb.embed(["warm-up"])
        # ~300-token chunks of real text: the answer sections re-packed to the budget
        text = "\n\n".join(d.text for d in load_documents(src).documents)
        docs = Path(tmp) / "docs"
        docs.mkdir()
        parts, cur = [], []
        for para in text.split("\n\n"):
            cur.append(para)
            if emb.count_tokens("\n\n".join(cur)) >= 280:
                parts.append("\n\n".join(cur))
                cur = []
        reps = -(-n_chunks // len(parts))
        for i, p in enumerate((parts * reps)[:n_chunks]):
            (docs / f"c{i:05d}.txt").write_text(f"{p}\n\n(copy {i})\n")
        cfg = RagConfig(workspace=Path(tmp) / "ws", chunk_tokens=320, embedding_model=embedding_model)
        chunks = [c for d in load_documents(docs).documents for c in chunk_document(d, emb.count_tokens, 320)]
        tokens = sum(emb.count_tokens(c.text) for c in chunks) / len(chunks)

        t0 = time.perf_counter()
        rep = ingest(cfg, docs, embedder=emb)
        ours = time.perf_counter() - t0

        base_cfg = RagConfig(workspace=Path(tmp) / "ws-base", chunk_tokens=320, embedding_model=embedding_model)
        col = get_collection(base_cfg, emb.name, create=True)
        t0 = time.perf_counter()
        for c in chunks:
            col.upsert(ids=[c.id], documents=[c.text], metadatas=[c.metadata()], embeddings=emb.embed([embed_text(c)]))
        base = time.perf_counter() - t0

        t0 = time.perf_counter()
        emb.embed([embed_text(c) for c in chunks])
        embed_only = time.perf_counter() - t0

    print(f"{rep.chunks} chunks, mean {tokens:.0f} tokens of {emb.name} (MiniLM truncates at 256, e5 at 512), "
          "torch threads 2")
    print("| path | seconds | chunks/s |\n| --- | --- | --- |")
    print(f"| rag.ingest (batched, Chroma, BM25) | {ours:.1f} | {rep.chunks / ours:.1f} |")
    print(f"| baseline: one chunk at a time | {base:.1f} | {len(chunks) / base:.1f} |")
    print(f"| embedding alone, batched | {embed_only:.1f} | {len(chunks) / embed_only:.1f} |")
    print(f"speed-up of rag.ingest over the baseline: {base / ours:.2f}x")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n_chunks", nargs="?", type=int, default=600)
    ap.add_argument("--embedding-model", default=None, help="as `onboard ingest --embedding-model` [default: MiniLM]")
    args = ap.parse_args()
    main(args.n_chunks, args.embedding_model)
