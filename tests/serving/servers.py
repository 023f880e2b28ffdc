"""Real servers for the serving tests: our app under uvicorn, in a thread of the test process (to reach
its engine) or in a subprocess started as `serving.app.run` is (to test start-up as users meet it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
RUN = "from serving.app import run; from serving.settings import ServeSettings; run(ServeSettings())"
"""What a deployment runs: every setting from ONBOARD_* environment variables."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a daemon thread; yield its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "the server did not start; its log is above"
        assert time.monotonic() < deadline, "the server did not start in 120 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_healthy(base: str, alive: Callable[[], bool], log: Path, timeout: float = 120) -> None:
    """Poll `base`/healthz until it answers 200; fail with the log when `alive()` turns false (the process
    that should serve died) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        assert alive(), log.read_text()
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"server did not start in {timeout:.0f} s:\n" + log.read_text()
        time.sleep(0.3)


@contextmanager
def serve_in_process(env: dict[str, str], log: Path, argv: list[str] | None = None,
                     timeout: float = 120) -> Iterator[str]:
    """`run(ServeSettings())` (or `argv`, e.g. the CLI) in a subprocess configured by `env` (ONBOARD_*)
    on a free port (ONBOARD_PORT); yield its base URL."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONBOARD_")}
    with log.open("w") as f:
        proc = subprocess.Popen(argv or [sys.executable, "-c", RUN], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**clean, **env, "ONBOARD_PORT": str(port)})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, lambda: proc.poll() is None, log, timeout)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def read_stream(stream) -> tuple[str, str | None]:
    """The text and finish reason of an openai-client chat stream."""
    parts, finish = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    return "".join(parts), finish


class Generated(list):
    """Tokens each generation produced; `started` is set once a generation has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()


def spy_generate(engine, monkeypatch) -> Generated:
    """Make a transformers engine ignore EOS (only a stop can end a generation before max_new_tokens) and record
    how many tokens each generation produced: requests generated alone (`generate`) and in the decode loop
    (serving/engines/batch.py) alike."""
    from serving.engines import batch
    from serving.engines.decode import Rows

    generated = Generated()
    original, take, serve, step = engine.model.generate, batch._Request.take, batch.Batcher._serve, Rows.step

    def generate(**kw):
        kw["min_new_tokens"] = kw["max_new_tokens"]
        generated.started.set()
        out = original(**kw)
        generated.append(out.shape[1] - kw["input_ids"].shape[1])
        return out

    def served(self, *args, **kw):
        req = serve(self, *args, **kw)
        generated.append(len(req.new))
        return req

    def stepped(rows):
        generated.started.set()
        return step(rows)

    monkeypatch.setattr(engine.model, "generate", generate)
    monkeypatch.setattr(batch._Request, "take", lambda self, token, eos, tokenizer: take(self, token, set(), tokenizer))
    monkeypatch.setattr(batch.Batcher, "_serve", served)
    monkeypatch.setattr(Rows, "step", stepped)
    return generated
