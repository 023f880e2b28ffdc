"""Query latency p50/p95 at 10k and 100k chunks, query embedding included, on 2 CPU cores.

    .venv/bin/python bench/query_latency.py [SIZES...]   # default: 10000 100000

Chunk texts are real sentences (Debian FAQ, English and Chinese) recombined; embedding 100k chunks
with MiniLM would take about an hour here, so each synthetic chunk's vector is a normalised mix of
two real chunk embeddings plus noise (realistic neighbourhoods for the HNSW graph). Queries are the
FAQ's real questions, embedded live (MiniLM, or `--embedding-model`) on every call, as a user's would be.
"""

from __future__ import annotations

import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_corpus  # noqa: E402


def build(cfg, name: str, n: int, pool: list[tuple[str, str]], vecs, rng: random.Random) -> float:
    import numpy as np

    from rag.retrieval import rebuild_bm25
    from rag.store import get_collection

    col = get_collection(cfg, name, create=True)
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        m = min(5000, n - start)
        ids, docs, metas, embs = [], [], [], []
        for i in range(start, start + m):
            a, b = rng.randrange(len(pool)), rng.randrange(len(pool))
            lang = pool[a][1]
            docs.append(f"{pool[a][0]} {pool[b][0]} (ref {i})")
            ids.append(f"c{i}")
            metas.append({"source": f"{lang}/doc{i // 20}.txt", "language": lang, "heading_path": "", "page": 0})
            v = 0.7 * vecs[a] + 0.3 * vecs[b] + np.random.default_rng(i).normal(0, 0.05, vecs.shape[1])
            embs.append((v / np.linalg.norm(v)).tolist())
        col.add(ids=ids, documents=docs, metadatas=metas, embeddings=embs)
    rebuild_bm25(cfg, col)
    return time.perf_counter() - t0


def main(sizes: list[int], embedding_model: str | None = None) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(2)
    from rag import RagConfig, Retriever
    from rag.embeddings import embedder_for

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        queries = write_corpus(Path(tmp) / "faq")
        sents = []
        for f in sorted((Path(tmp) / "faq").rglob("*.txt")):
            lang = f.parent.name
            for s in re.split(r"(?<=[.!?。！？])\s*", f.read_text()):
                if len(s.strip()) > 20:
                    sents.append((" ".join(s.split()), lang))
        emb = embedder_for(RagConfig(workspace=Path(tmp), embedding_model=embedding_model))
        pool = sents[:2000]
        vecs = np.array(emb.embed([s for s, _ in pool]))
        print(f"{len(pool)} real sentences embedded by {emb.name}; {len(queries)} real questions as queries; "
              "torch threads 2")
        print("| chunks | mode | p50 ms | p95 ms | mean ms |\n| --- | --- | --- | --- | --- |")
        for n in sizes:
            cfg = RagConfig(workspace=Path(tmp) / f"ws{n}", embedding_model=embedding_model)
            secs = build(cfg, emb.name, n, pool, vecs, rng)
            r = Retriever(cfg, emb)
            r.search("warm up", k=5)
            r.search("预热", k=5)
            for mode in ("dense", "bm25", "hybrid"):
                times = []
                for q in queries:
                    t0 = time.perf_counter()
                    r.search(q["query"], k=5, mode=mode)
                    times.append((time.perf_counter() - t0) * 1000)
                p95 = statistics.quantiles(times, n=20)[-1]
                print(f"| {n:,} | {mode} | {statistics.median(times):.1f} | {p95:.1f} | {statistics.mean(times):.1f} |")
            print(f"<!-- {n:,} chunks inserted + BM25 built in {secs:.0f} s -->")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    ap.add_argument("--embedding-model", default=None, help="as `onboard ingest --embedding-model` [default: MiniLM]")
    args = ap.parse_args()
    main(args.sizes, args.embedding_model)
