"""A load of streaming customer chats through POST /chat, with API keys and rate limits on, and what keys,
limits and metrics cost per request against the same server without them, in one run.

    .venv/bin/python bench/chat_load.py [--clients 200] [--seconds 60] [--limited 10] [--rpm 30] [--tokens 16]

The server is the real app in a process of its own (uvicorn, 1 worker): real retrieval (the example shop's
documents ingested into a fresh workspace: Chroma, BM25, the MiniLM embedder on every question), conversations
in real SQLite, keys in the real key store. The engine is bench/gateway_overhead.py's instant one (it writes
`--tokens` pieces at once), so what is measured is the server, not a model: on two cores any model would be
the whole story. Each client keeps one conversation (its session_id) and asks again as soon as an answer ends,
for `--seconds`; `--limited` of the clients share one key limited to `--rpm` requests per minute and, on 429,
wait its Retry-After (as the openai client does); every other client has a key of its own with no limit.

Checked and reported: statuses (no 5xx expected; 429 only for the limited key, and that key's answers within
its limit), each session's turns in SQLite equal to the answers its client read (nothing lost or mixed up),
the server's memory (RSS) at start, peak and end, and p50/p99 latency to the `end` event. Then the same load
without keys, limits or metrics (the app's key store and metrics removed), and one client at a time each way
for the per-request cost without queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["Do you ship to Canada?", "How long do I have to return an item?", "退货要多久？",
             "What is the warranty on lamps?", "能开发票吗？", "And how long does that take?"]


def serve(port: int, ws: Path, guarded: bool, tokens: int) -> None:
    import uvicorn

    from bench.gateway_overhead import InstantEngine
    from serving.app import create_app, server_config
    from serving.settings import ServeSettings

    settings = ServeSettings(model=Path("instant"), model_name="instant", workspace=ws, rag_k=3, port=port,
                             max_queue=1000, keys_file=ws / "serving" / "keys.sqlite",
                             conversations_file=ws / "serving" / ("chat-guarded.sqlite" if guarded else "chat.sqlite"))
    app = create_app(settings, engine=InstantEngine(tokens))
    if not guarded:  # the same server without keys, limits or metrics
        app.state.keys = None
        app.state.metrics = None
    uvicorn.Server(server_config(app, settings, log_level="warning")).run()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def load(base: str, keys: list[str | None], seconds: float, limited: set[int], pid: int) -> dict:
    """Each client asks in its own conversation until `seconds` pass; what they got."""
    import httpx

    stop = time.monotonic() + seconds
    stats = {"status": {}, "latency": [], "ttft": [], "by_client": [[] for _ in keys], "sessions": [None] * len(keys),
             "limited_ok_times": [], "other_429": 0, "rss": [rss_mb(pid)], "errors": []}
    limits = httpx.Limits(max_connections=len(keys), max_keepalive_connections=len(keys))

    async def client(i: int, http: httpx.AsyncClient) -> None:
        headers = {"authorization": f"Bearer {keys[i]}"} if keys[i] else {}
        n = 0
        while time.monotonic() < stop:
            body = {"message": QUESTIONS[n % len(QUESTIONS)], "stream": True}
            if stats["sessions"][i]:
                body["session_id"] = stats["sessions"][i]
            t0, first, ended = time.perf_counter(), None, None
            try:
                async with http.stream("POST", "/chat", json=body, headers=headers) as r:
                    stats["status"][r.status_code] = stats["status"].get(r.status_code, 0) + 1
                    if r.status_code == 429:
                        if i not in limited:
                            stats["other_429"] += 1
                        await asyncio.sleep(min(float(r.headers.get("retry-after", "1")), max(0, stop - time.monotonic())))
                        continue
                    if r.status_code != 200:
                        stats["errors"].append((r.status_code, (await r.aread())[:200]))
                        continue
                    event = None
                    async for line in r.aiter_lines():
                        if line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:") and event == "delta" and first is None:
                            first = time.perf_counter() - t0
                        elif line.startswith("data:") and event == "end":
                            ended = json.loads(line[5:])
            except httpx.HTTPError as e:
                stats["errors"].append(("client", repr(e)[:200]))
                continue
            if ended is None:
                stats["errors"].append(("no end event", ""))
                continue
            stats["latency"].append(time.perf_counter() - t0)
            stats["ttft"].append(first or 0.0)
            stats["sessions"][i] = ended["session_id"]
            stats["by_client"][i].append(ended["response_id"])
            if i in limited:
                stats["limited_ok_times"].append(time.monotonic())
            n += 1

    async def watch() -> None:
        while time.monotonic() < stop:
            await asyncio.sleep(1)
            stats["rss"].append(rss_mb(pid))

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as http:
        await asyncio.gather(watch(), *(client(i, http) for i in range(len(keys))))
    stats["rss"].append(rss_mb(pid))
    return stats


def sessions_intact(db: Path, stats: dict) -> tuple[int, int]:
    """(sessions whose SQLite turns are exactly the answers its client read, sessions)."""
    con = sqlite3.connect(db)
    good = total = 0
    for session, answers in zip(stats["sessions"], stats["by_client"], strict=True):
        if session is None:
            continue
        total += 1
        turns = con.execute("SELECT COUNT(*) FROM turns WHERE session_id = ?", (session,)).fetchone()[0]
        kept = {r for (r,) in con.execute("SELECT id FROM responses WHERE session_id = ?", (session,))}
        good += turns == 2 * len(answers) and kept == set(answers)
    return good, total


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def start(ws: Path, guarded: bool, tokens: int):
    from bench.common import serve_self

    return serve_self(__file__, ["--ws", str(ws), "--tokens", str(tokens)] + (["--guarded"] if guarded else []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--limited", type=int, default=10, help="clients sharing the one rate-limited key")
    ap.add_argument("--rpm", type=int, default=30, help="that key's requests per minute")
    ap.add_argument("--tokens", type=int, default=16, help="pieces per answer")
    ap.add_argument("--one-seconds", type=float, default=10, help="seconds of one client at a time, each way")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ws", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--guarded", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.ws, args.guarded, args.tokens)
        return
    from rag import RagConfig, ingest
    from serving.keys import KeyStore

    ws = Path(tempfile.mkdtemp(prefix="chat-load-"))
    ingest(RagConfig(workspace=ws), ROOT / "examples" / "docs")
    store = KeyStore(ws / "serving" / "keys.sqlite")
    _, limited_key = store.create("limited", rpm=args.rpm)
    keys = [limited_key if i < args.limited else store.create(f"client-{i}")[1] for i in range(args.clients)]
    store.close()
    limited = set(range(args.limited))
    print(f"{args.clients} clients streaming /chat for {args.seconds:g} s ({args.limited} share a key limited to "
          f"{args.rpm} requests/min; the others each have an unlimited key); instant engine, {args.tokens} pieces "
          "per answer; retrieval k=3 on the example shop")
    rows = {}
    for guarded in (True, False):
        name = "keys + limits + metrics" if guarded else "none of them"
        proc, base = start(ws, guarded, args.tokens)
        try:
            solo = keys[args.limited:args.limited + 1] if guarded else [None]
            asyncio.run(load(base, solo, 3, set(), proc.pid))  # warm-up (the embedder loads on the first question)
            one = asyncio.run(load(base, solo, args.one_seconds, set(), proc.pid))
            stats = asyncio.run(load(base, keys if guarded else [None] * args.clients, args.seconds,
                                     limited if guarded else set(), proc.pid))
        finally:
            proc.terminate()
            proc.wait(30)
        db = ws / "serving" / ("chat-guarded.sqlite" if guarded else "chat.sqlite")
        good, total = sessions_intact(db, stats)
        rows[name] = (one, stats)
        lat = stats["latency"]
        print(f"\n{name}: statuses {dict(sorted(stats['status'].items()))}, {len(lat)} answers "
              f"({len(lat) / args.seconds:.1f}/s), errors {len(stats['errors'])} {stats['errors'][:3]}")
        print(f"  latency to the end event p50 {pct(lat, .5) * 1e3:.0f} ms, p99 {pct(lat, .99) * 1e3:.0f} ms; "
              f"first piece p50 {pct(stats['ttft'], .5) * 1e3:.0f} ms")
        print(f"  sessions intact {good}/{total}; server RSS start {stats['rss'][0]:.0f} MB, peak {max(stats['rss']):.0f} "
              f"MB, end {stats['rss'][-1]:.0f} MB")
        if guarded:
            ok = sorted(stats["limited_ok_times"])
            worst = max((sum(1 for t in ok if s <= t < s + 60) for s in ok), default=0)
            print(f"  the limited key: {len(ok)} answers, at most {worst} in any 60 s (limit {args.rpm}); "
                  f"429s to unlimited keys: {stats['other_429']}")
        print(f"  one client at a time: {len(one['latency'])} answers, p50 {pct(one['latency'], .5) * 1e3:.2f} ms, "
              f"p99 {pct(one['latency'], .99) * 1e3:.2f} ms")
    (g1, g), (b1, b) = rows["keys + limits + metrics"], rows["none of them"]
    print("\nwhat keys, limits and metrics add per request (guarded − bare):")
    print(f"  one at a time: p50 {(pct(g1['latency'], .5) - pct(b1['latency'], .5)) * 1e3:+.2f} ms, "
          f"p99 {(pct(g1['latency'], .99) - pct(b1['latency'], .99)) * 1e3:+.2f} ms "
          f"(ratio p50 {pct(g1['latency'], .5) / pct(b1['latency'], .5):.3f})")
    print(f"  under load:    p50 {(pct(g['latency'], .5) - pct(b['latency'], .5)) * 1e3:+.1f} ms, "
          f"p99 {(pct(g['latency'], .99) - pct(b['latency'], .99)) * 1e3:+.1f} ms; answers/s "
          f"{len(g['latency']) / args.seconds:.1f} vs {len(b['latency']) / args.seconds:.1f}")


if __name__ == "__main__":
    main()
