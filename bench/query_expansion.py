"""Query expansion by a hypothetical answer (HyDE, `query_expansion: hyde`) on the Debian FAQ benchmark: recall with
and without it, in both languages, and what writing the hypotheses costs.

    .venv/bin/python bench/query_expansion.py --model ~/.cache/onboard/models/qwen2.5-coder-0.5b-instruct/hf \
        [--embedding-model multilingual-e5-small] [--batch 8]

The model writes every question's hypothesis first (rag/hyde.py's prompts, greedy, up to hyde.MAX_TOKENS tokens,
`--batch` questions at a time: the time per question is reported); the retriever then searches with
`query_expansion: hyde` and a writer that hands it those hypotheses, against the same retriever without expansion.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import faq_index, recall  # noqa: E402


def hypotheses(model_path: str, questions: list[str], batch: int) -> tuple[dict[str, str], float]:
    """Each question's hypothetical answer, and the seconds per question."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rag import hyde

    tok = AutoTokenizer.from_pretrained(model_path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    out, t0 = {}, time.perf_counter()
    for i in range(0, len(questions), batch):
        part = questions[i:i + batch]
        prompts = [tok.apply_chat_template(hyde.messages(q), tokenize=False, add_generation_prompt=True) for q in part]
        enc = tok(prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=hyde.MAX_TOKENS, do_sample=False)
        for q, seq in zip(part, gen[:, enc["input_ids"].shape[1]:], strict=True):
            out[q] = tok.decode(seq, skip_special_tokens=True)
        print(f"{min(i + batch, len(questions))}/{len(questions)} hypotheses", file=sys.stderr, flush=True)
    return out, (time.perf_counter() - t0) / len(questions)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the chat model that writes the hypotheses (a local folder)")
    ap.add_argument("--embedding-model", default=None, help="as `onboard ingest --embedding-model` [default: MiniLM]")
    ap.add_argument("--batch", type=int, default=8, help="questions per generation batch")
    args = ap.parse_args()
    from dataclasses import replace

    from rag import Retriever, hyde

    with tempfile.TemporaryDirectory() as tmp:
        cfg, queries, _, _ = faq_index(Path(tmp), args.embedding_model)
        written, per_question = hypotheses(args.model, [q["query"] for q in queries], args.batch)
        by_prompt = {hyde.messages(q)[1]["content"]: h for q, h in written.items()}
        plain = Retriever(cfg)
        expanded = Retriever(replace(cfg, query_expansion="hyde"), plain.embedder,
                             writer=lambda messages: by_prompt[messages[-1]["content"]])
        print(f"\n{plain.embedder.name}; hypotheses by {Path(args.model).name}: {per_question:.2f} s per question "
              f"(batches of {args.batch}, 2 threads)\n")
        print("| retrieval | language | recall@1 | recall@5 | MRR@10 |\n| --- | --- | --- | --- | --- |")
        for name, r in (("hybrid", plain), ("hybrid + HyDE", expanded)):
            for lang in ("en", "zh"):
                r1, r5, mrr = recall(lambda q, r=r: r.search(q, k=10), [q for q in queries if q["language"] == lang])
                print(f"| {name} | {lang} | {r1:.3f} | {r5:.3f} | {mrr:.3f} |")


if __name__ == "__main__":
    main()
