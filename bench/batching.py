"""What dynamic batching in the transformers engine buys: answers per second for N clients asking at once,
batched (max_batch N) against one at a time (max_batch 1), on the same loaded model, in one run.

    .venv/bin/python bench/batching.py [--model DIR] [--clients 8] [--rounds 2] [--max-tokens 64]

Greedy, 2 torch threads, the same questions each way; the runs alternate (one at a time, batched, one at a
time, ...) so that a machine slowing down hurts both alike. Reported: generated tokens per second, the ratio
batched / one at a time, each client's median latency (the price: an answer waits for its batch), and whether
the batched answers are the ones the model gives one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from training.fetch import default_cache

QWEN = default_cache("qwen2.5-coder-0.5b-instruct") / "hf"
QUESTIONS = ["How long do I have to return an item, and who pays for shipping?",
             "Which payment methods do you accept?", "退款多久能到账？", "Do you ship to Canada, and how long does it take?",
             "能开发票吗？", "What is the warranty on lamps?", "How do I change my delivery address?",
             "我的订单什么时候发货？"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=QWEN)
    ap.add_argument("--clients", type=int, default=8, help="requests sent at once")
    ap.add_argument("--rounds", type=int, default=2, help="runs each way")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    from serving.engines.base import SamplingParams
    from serving.engines.hf import TransformersEngine

    engine = TransformersEngine(args.model, threads=2, max_batch=args.clients)
    params = SamplingParams(max_new_tokens=args.max_tokens)
    questions = (QUESTIONS * args.clients)[: args.clients]

    async def run(batch: int):
        engine._batcher.max_batch = batch

        async def one(q: str):
            t = time.perf_counter()
            g = await engine.generate([{"role": "user", "content": q}], params)
            return time.perf_counter() - t, g

        t0 = time.perf_counter()
        got = await asyncio.gather(*(one(q) for q in questions))
        return time.perf_counter() - t0, got

    asyncio.run(run(1))  # warm-up
    seen: dict[int, list] = {1: [], args.clients: []}
    for _ in range(args.rounds):
        for batch in (1, args.clients):
            seen[batch].append(asyncio.run(run(batch)))

    def rate(batch: int) -> tuple[float, float, list[str]]:
        runs = seen[batch]
        tokens = sum(g.completion_tokens for _, got in runs for _, g in got)
        latency = statistics.median(s for _, got in runs for s, _ in got)
        return tokens / sum(s for s, _ in runs), latency, [g.text for _, g in runs[0][1]]

    alone, alone_latency, alone_texts = rate(1)
    batched, batched_latency, batched_texts = rate(args.clients)
    same = sum(a == b for a, b in zip(alone_texts, batched_texts, strict=True))
    print(f"model {args.model.name}, {args.clients} clients at once, greedy, up to {args.max_tokens} tokens, "
          f"{args.rounds} rounds each way")
    print(f"one at a time: {alone:.1f} tokens/s, median latency {alone_latency:.1f} s")
    print(f"batched:       {batched:.1f} tokens/s, median latency {batched_latency:.1f} s   "
          f"ratio {batched / alone:.2f}x")
    print(f"batched answers equal to the one-at-a-time answers: {same}/{args.clients}")


if __name__ == "__main__":
    main()
