"""What constrained JSON decoding (response_format json_schema, xgrammar) costs per token against free decoding,
on this machine, in one run.

    .venv/bin/python bench/json_decoding.py [--model DIR] [--answers 6] [--max-tokens 96]

The transformers engine on the model (default: the offline Qwen2.5-Coder-0.5B, `onboard base fetch`), greedy,
2 torch threads; the same questions answered free and under a JSON schema, alternating (free, json, free, json,
...) so that a machine slowing down hurts both alike. The figure is the time per generated token (prefill
included), and the ratio json / free; the grammar's compile time (once per schema, cached) is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from training.fetch import default_cache

QWEN = default_cache("qwen2.5-coder-0.5b-instruct") / "hf"
QUESTIONS = ["How long do I have to return an item, and who pays for shipping?",
             "Which payment methods do you accept?", "退款多久能到账？", "Do you ship to Canada, and how long does it take?",
             "能开发票吗？", "What is the warranty on lamps?"]
SCHEMA = {"type": "object", "properties": {
    "answer": {"type": "string", "maxLength": 300}, "language": {"enum": ["en", "zh"]},
    "needs_human": {"type": "boolean"}}, "required": ["answer", "language", "needs_human"],
    "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=QWEN)
    ap.add_argument("--answers", type=int, default=6, help="questions answered each way")
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()
    from serving.engines.base import SamplingParams
    from serving.engines.hf import TransformersEngine

    engine = TransformersEngine(args.model, threads=2)
    t0 = time.perf_counter()
    engine._grammar(SamplingParams(response_format=FORMAT))  # compiles and caches the schema's grammar
    compile_s = time.perf_counter() - t0

    async def one(question: str, fmt: dict | None) -> tuple[float, int, str]:
        msgs = [{"role": "user", "content": question}]
        t = time.perf_counter()
        g = await engine.generate(msgs, SamplingParams(max_new_tokens=args.max_tokens, response_format=fmt))
        return time.perf_counter() - t, g.completion_tokens, g.text

    per_token = {"free": [], "json": []}
    valid = 0
    for q in (QUESTIONS * args.answers)[: args.answers]:
        for kind, fmt in (("free", None), ("json", FORMAT)):
            s, n, text = asyncio.run(one(q, fmt))
            per_token[kind].append(s / max(n, 1))
            if kind == "json":
                try:
                    valid += isinstance(json.loads(text), dict)
                except json.JSONDecodeError:
                    pass
    free, js = statistics.median(per_token["free"]), statistics.median(per_token["json"])
    print(f"model {args.model.name}, {args.answers} answers each way, greedy, up to {args.max_tokens} tokens")
    print(f"grammar compile (once per schema): {compile_s * 1000:.0f} ms")
    print(f"free: {free * 1000:.1f} ms/token   json_schema: {js * 1000:.1f} ms/token   ratio {js / free:.2f}x")
    print(f"valid JSON objects under the schema: {valid}/{args.answers} (the rest cut by --max-tokens)")


if __name__ == "__main__":
    main()
