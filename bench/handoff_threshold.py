"""Where POST /chat's "nothing relevant" handoff should draw the line: the best embedding cosine that retrieval
finds for questions the documents answer, against out-of-domain questions, on a workspace's held-out split.

    .venv/bin/python bench/handoff_threshold.py -w WORKSPACE [--k 3]

Reads WORKSPACE/data/sft/test.jsonl (its document questions and its out-of-domain questions, the user turn of
each), retrieves for each with the workspace's index as the server does (hybrid, k chunks), and reports per
language the best dense cosine of both kinds, how often serving/handoff.py's rule (`nothing_relevant`) hands
off at thresholds around the default, and the threshold with the best balanced accuracy. Languages the
embedding model does not cover get no dense scores: for those the rule is "no BM25 match", reported as is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag import RagConfig, Retriever  # noqa: E402
from serving.handoff import nothing_relevant  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-w", "--workspace", type=Path, required=True)
    ap.add_argument("--k", type=int, default=3)
    args = ap.parse_args()
    rows = [json.loads(x) for x in (args.workspace / "data" / "sft" / "test.jsonl").read_text().splitlines()]
    retriever = Retriever(RagConfig.from_workspace(args.workspace))
    by: dict[tuple[str, str], list] = {}
    for r in rows:
        kind = {"question-heading": "answerable", "out-of-domain": "out-of-domain"}.get(r["meta"]["rule"])
        if kind is None:
            continue
        question = next(m["content"] for m in reversed(r["messages"]) if m["role"] == "user")
        hits = retriever.search(question, args.k)
        by.setdefault((r["meta"]["language"], kind), []).append(hits)
    print(f"workspace {args.workspace}, k={args.k}, hybrid retrieval as served\n")
    print("| language | kind | questions | best cosine: median [min, max] |")
    print("| --- | --- | --- | --- |")
    best = {}
    for (lang, kind), runs in sorted(by.items()):
        tops = [max((h.metadata["dense_score"] for h in hits if "dense_score" in h.metadata), default=None)
                for hits in runs]
        tops = [t for t in tops if t is not None]
        best[(lang, kind)] = tops
        cell = f"{statistics.median(tops):.3f} [{min(tops):.3f}, {max(tops):.3f}]" if tops else "no dense scores"
        print(f"| {lang} | {kind} | {len(runs)} | {cell} |")
    print("\n| language | threshold | answerable handed off | out-of-domain handed off | balanced accuracy |")
    print("| --- | --- | --- | --- | --- |")
    for lang in sorted({lang for lang, _ in by}):
        ans, ood = by.get((lang, "answerable"), []), by.get((lang, "out-of-domain"), [])
        scored = best.get((lang, "answerable")) or best.get((lang, "out-of-domain"))
        seen = (best.get((lang, "answerable")) or []) + (best.get((lang, "out-of-domain")) or [])
        lo, hi = (min(seen), max(seen)) if seen else (0.0, 0.0)  # the grid spans the cosines this embedder gives
        grid = sorted({round(lo + (hi - lo) * i / 12, 2) for i in range(13)}) if scored else [None]
        results = []
        for t in grid:
            a = sum(nothing_relevant(h, t) for h in ans)  # t None: the BM25 rule alone
            o = sum(nothing_relevant(h, t) for h in ood)
            bal = ((len(ans) - a) / max(len(ans), 1) + o / max(len(ood), 1)) / 2
            results.append((bal, t))
            shown = "BM25 rule" if t is None else f"{t:.2f}"
            print(f"| {lang} | {shown} | {a}/{len(ans)} | {o}/{len(ood)} | {bal:.2f} |")
        top = max(results, key=lambda x: (x[0], -(x[1] or 0)))
        if top[1] is not None:
            print(f"| {lang} | best: {top[1]:.2f} | | | {top[0]:.2f} |")


if __name__ == "__main__":
    main()
