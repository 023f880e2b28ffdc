"""What the gateway (FastAPI app, middleware, validation, SSE framing, uvicorn, loopback HTTP) adds to a streamed
chat answer over calling the engine directly, at 1 and at 100 concurrent streams, in one run.

    .venv/bin/python bench/gateway_overhead.py [--requests 400] [--tokens 16]

The engine is an instant fake (it yields `--tokens` pieces without computing anything), so what is measured is
the server alone. The server runs in a process of its own (`--serve PORT`, 1 uvicorn worker, no retrieval); the
client is httpx (async, HTTP/1.1 keep-alive) reading each stream to its [DONE]. Reported per request: the time
through the server minus the median time of the same answer from the engine called in-process, p50 and p99;
the client's own parsing is included (as any load generator's is).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MSGS = [{"role": "user", "content": "How long do I have to return an item?"}]


class InstantEngine:
    """An engine that answers at once: `tokens` pieces of text, then the finish."""

    def __init__(self, tokens: int = 16):
        self.tokens = tokens

    async def generate(self, messages, params):
        from serving.engines.base import Generation

        return Generation("word " * self.tokens, 10, self.tokens, "stop")

    async def stream(self, messages, params):
        from serving.engines.base import Delta

        for _ in range(self.tokens - 1):
            yield Delta("word ")
        yield Delta("word ", "stop", 10, self.tokens)

    async def count_tokens(self, messages) -> int:
        return 10

    async def ready(self):
        return None

    async def close(self) -> None:
        pass


def serve(port: int, tokens: int) -> None:
    import uvicorn

    from serving.app import create_app, server_config
    from serving.settings import ServeSettings

    settings = ServeSettings(model=Path("instant"), model_name="instant", rag_k=0, port=port, max_queue=1000)
    uvicorn.Server(server_config(create_app(settings, engine=InstantEngine(tokens)), settings,
                                 log_level="warning")).run()


async def direct(tokens: int, n: int) -> float:
    """The median seconds to read one answer from the engine itself."""
    from serving.engines.base import SamplingParams

    engine, times = InstantEngine(tokens), []
    for _ in range(n):
        t0 = time.perf_counter()
        async for _ in engine.stream(MSGS, SamplingParams()):
            pass
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def through(base: str, concurrency: int, n: int) -> list[float]:
    import httpx

    body = {"model": "instant", "messages": MSGS, "stream": True}
    times: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def one() -> None:
            t0 = time.perf_counter()
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200, r.status_code
                async for line in r.aiter_lines():
                    if line == "data: [DONE]":
                        break
            times.append(time.perf_counter() - t0)

        for _ in range(max(1, n // 50)):  # warm-up
            await one()
        times.clear()
        for start in range(0, n, concurrency):
            await asyncio.gather(*(one() for _ in range(min(concurrency, n - start))))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400, help="streams at each concurrency")
    ap.add_argument("--tokens", type=int, default=16, help="pieces per answer")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.tokens)
        return


    from bench.common import serve_self

    proc, base = serve_self(__file__, ["--tokens", str(args.tokens)])
    try:
        engine_s = asyncio.run(direct(args.tokens, args.requests))
        print(f"instant engine, {args.tokens} pieces per streamed answer, {args.requests} streams per row; "
              f"the engine alone: {engine_s * 1e3:.3f} ms per answer")
        print("concurrent streams | p50 overhead | p99 overhead | streams/s")
        for concurrency in (1, 100):
            t0 = time.perf_counter()
            times = asyncio.run(through(base, concurrency, args.requests))
            wall = time.perf_counter() - t0
            over = sorted(t - engine_s for t in times)
            p50, p99 = over[len(over) // 2], over[min(len(over) - 1, int(len(over) * 0.99))]
            print(f"{concurrency:>18} | {p50 * 1e3:9.2f} ms | {p99 * 1e3:9.2f} ms | {len(times) / wall:9.0f}")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
