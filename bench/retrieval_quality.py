"""Retrieval quality on the Debian FAQ (English and Chinese): dense vs BM25 vs hybrid.

    .venv/bin/python bench/retrieval_quality.py [--embedding-model multilingual-e5-small]

Each numbered question heading is a query; its answer section (ingested without the heading, so
no method wins by copying the question) is the target. Both languages share one collection, as in
a bilingual deployment. Metrics: recall@1, recall@5 and MRR@10 at the level of the answer section.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import faq_index, recall  # noqa: E402


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedding-model", default=None, help="as `onboard ingest --embedding-model` [default: MiniLM]")
    args = ap.parse_args()
    from rag import Retriever

    with tempfile.TemporaryDirectory() as tmp:
        cfg, queries, rep, secs = faq_index(Path(tmp), args.embedding_model)
        print(f"corpus: {rep.documents} answer sections -> {rep.chunks} chunks, ingested in {secs:.0f} s;"
              f" {len(queries)} queries")
        rows = []
        for mode, w in (("dense", 0), ("bm25", 0), ("hybrid", 1.0), ("hybrid", 0.5), ("hybrid", 0.0)):
            cfg.dense_weight_other = w
            r = Retriever(cfg)
            mode_name = f"{mode} (dense weight {w:g} for non-English)" if mode == "hybrid" else mode
            for lang in ("en", "zh", "all"):
                qs = [q for q in queries if lang == "all" or q["language"] == lang]
                rows.append((mode_name, lang, len(qs), *recall(lambda q, r=r, mode=mode: r.search(q, k=10, mode=mode), qs)))
        print("\n| method | queries | n | recall@1 | recall@5 | MRR@10 |\n| --- | --- | --- | --- | --- | --- |")
        for mode, lang, n, a, b, c in rows:
            print(f"| {mode} | {lang} | {n} | {a:.3f} | {b:.3f} | {c:.3f} |")


if __name__ == "__main__":
    main()
