"""What dynamic batching in the transformers engine buys: answers per second for N clients asking at once,
batched (max_batch N) against one at a time (max_batch 1), on the same loaded model, in one run.

    .venv/bin/python bench/batching.py [--model DIR] [--clients 1,8,32] [--batch 8] [--rounds 1] [--max-tokens 64]
                                       [--asks 1] [--no-pack]

Greedy, 2 torch threads, streamed (as chat clients ask), the same questions each way, one row per number of clients;
each client asks `--asks` questions one after another (1: all clients ask at once, once; more: a closed loop, each
asking again as soon as it is answered), client c the questions from number c on (with `--asks 8` every client asks
all 8, so no client has more to ask than another and the run does not end on one client's longer answers alone); in
each row one at a time (max_batch 1, the engine before batching) and batched alternate, `--rounds` times each.
`--no-pack` keeps transformers' own linear layers (serving/engines/packed.py). Reported: answers and generated
tokens per second, the median time to first token, the ratio of answers per second batched / one at a time, and how
many batched answers are the ones given one at a time.
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
    ap.add_argument("--clients", default="1,8,32", help="comma-separated: requests sent at once, one row each")
    ap.add_argument("--batch", type=int, default=8, help="the engine's max_batch when batching (the default)")
    ap.add_argument("--rounds", type=int, default=1, help="runs each way per row")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--asks", type=int, default=1, help="questions each client asks, one after another")
    ap.add_argument("--no-pack", action="store_true",
                    help="keep transformers' linear layers (the engine before serving/engines/packed.py)")
    args = ap.parse_args()
    from serving.engines.base import SamplingParams
    from serving.engines.hf import TransformersEngine

    engine = TransformersEngine(args.model, threads=2, max_batch=args.batch, pack_weights=not args.no_pack)
    params = SamplingParams(max_new_tokens=args.max_tokens)

    async def run(clients: int, batch: int):
        """(wall seconds, [(time to first token, answer, tokens)]) for `clients` streams sent at once."""
        engine._batcher.max_batch = batch

        async def one(q: str):
            t, first, parts, tokens = time.perf_counter(), None, [], 0
            async for d in engine.stream([{"role": "user", "content": q}], params):
                if d.text and first is None:
                    first = time.perf_counter() - t
                parts.append(d.text)
                tokens = d.completion_tokens or tokens
            return first or 0.0, "".join(parts), tokens

        async def client(c: int):
            return [await one(QUESTIONS[(c + k) % len(QUESTIONS)]) for k in range(args.asks)]

        t0 = time.perf_counter()
        got = await asyncio.gather(*(client(c) for c in range(clients)))
        return time.perf_counter() - t0, [a for answers in got for a in answers]

    asyncio.run(run(1, 1))  # warm-up
    print(f"model {args.model.name}, greedy, up to {args.max_tokens} tokens, streamed, batches of up to "
          f"{args.batch}, {args.asks} question(s) per client, {args.rounds} round(s) each way per row, "
          f"{engine.packed} linear layers packed")
    print("clients | one at a time: req/s  tok/s  TTFT p50 | batched: req/s  tok/s  TTFT p50 | req/s ratio | same")
    for clients in (int(c) for c in args.clients.split(",")):
        rows, runs_of = {}, {1: [], args.batch: []}
        for _ in range(args.rounds):  # alternating, so that a machine slowing down or speeding up hits both alike
            for batch in (1, args.batch):
                runs_of[batch].append(asyncio.run(run(clients, batch)))
        for batch, runs in runs_of.items():
            wall = sum(w for w, _ in runs)
            answers = [a for _, got in runs for a in got]
            rows[batch] = (len(answers) / wall, sum(n for _, _, n in answers) / wall,
                           statistics.median(f for f, _, _ in answers), [text for _, text, _ in runs[0][1]])
        (r1, t1, f1, a1), (rb, tb, fb, ab) = rows[1], rows[args.batch]
        same = sum(x == y for x, y in zip(a1, ab, strict=True))
        print(f"{clients:>7} | {r1:20.2f} {t1:6.1f} {f1:8.2f} s | {rb:14.2f} {tb:6.1f} {fb:8.2f} s | "
              f"{rb / r1:10.2f}x | {same}/{len(a1)}")


if __name__ == "__main__":
    main()
