"""The transformers engine: async, one generation at a time, and a generation nobody waits for stops."""

import asyncio
import json
import threading
import time

import httpx
import pytest

from serving.app import create_app
from serving.engines.base import SamplingParams
from serving.engines.hf import TransformersEngine
from serving.errors import ModelNotLoaded
from serving.settings import ServeSettings
from tests.serving.servers import Generated, free_port, serve_in_thread, spy_generate

MSGS = [{"role": "user", "content": "How long is the warranty on lamps?"}]


@pytest.fixture(scope="module")
def engine(merged_model):
    return TransformersEngine(merged_model)


@pytest.fixture()
def generated(engine, monkeypatch) -> Generated:
    """Tokens each generation produced, with EOS suppressed: only a stop can end one before max_new_tokens."""
    return spy_generate(engine, monkeypatch)


async def _wait_for(counts: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not counts and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelNotLoaded, match="no config.json"):
        TransformersEngine(tmp_path)


def test_stream_and_generate_agree(engine):
    async def both():
        full = await engine.generate(MSGS, SamplingParams(max_new_tokens=12))
        deltas = [d async for d in engine.stream(MSGS, SamplingParams(max_new_tokens=12))]
        return full, deltas

    full, deltas = asyncio.run(both())
    assert "".join(d.text for d in deltas) == full.text
    last = deltas[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == (
        full.finish_reason, full.prompt_tokens, full.completion_tokens)
    assert asyncio.run(engine.count_tokens(MSGS)) == full.prompt_tokens


def test_closing_a_stream_stops_the_generation(engine, generated):
    async def read_one_then_close():
        stream = engine.stream(MSGS, SamplingParams(max_new_tokens=400))
        await anext(stream)
        await stream.aclose()
        await _wait_for(generated)

    asyncio.run(read_one_then_close())
    assert generated and generated[0] < 100, generated  # EOS suppressed: 400 tokens unless stopped


def test_cancelling_generate_stops_it(engine, generated):
    async def start_then_cancel():
        task = asyncio.create_task(engine.generate(MSGS, SamplingParams(max_new_tokens=400)))
        await asyncio.to_thread(generated.started.wait, 60)  # cancel once the model is generating
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _wait_for(generated)

    asyncio.run(start_then_cancel())
    # EOS suppressed: 400 tokens unless the cancel stopped it (the margin is for a loaded CI machine)
    assert generated and generated[0] < 200, generated


def test_one_generation_at_a_time_and_the_next_one_runs_after_a_cancelled_one(engine):
    async def two():
        stream = engine.stream(MSGS, SamplingParams(max_new_tokens=400))
        await anext(stream)
        await stream.aclose()
        a, b = await asyncio.gather(engine.generate(MSGS, SamplingParams(max_new_tokens=8)),
                                    engine.generate(MSGS, SamplingParams(max_new_tokens=8)))
        return a, b

    a, b = asyncio.run(two())
    assert a == b and a.completion_tokens <= 8


def test_a_client_that_disconnects_stops_the_generation(engine, generated, no_onboard_env, merged_model):
    app = create_app(ServeSettings(model=merged_model, rag_k=0, max_new_tokens=400), engine=engine)
    with serve_in_thread(app) as base:
        body = {"model": "merged", "messages": MSGS, "max_tokens": 400, "stream": True}
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    break  # the first piece of text: hang up
        deadline = time.monotonic() + 60
        while not generated and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{base}/healthz").status_code == 200
    assert generated and generated[0] < 100, generated


def test_an_answer_stops_at_the_end_of_the_context_window(engine, generated):
    """Issue 11, item 6: max_new_tokens is cut to what the window has left; a prompt filling it is refused."""
    from serving.errors import ContextTooLong

    async def fill(words: int, max_new: int):
        msgs = [{"role": "user", "content": "lamp " * words}]
        n = await engine.count_tokens(msgs)
        return n, await engine.generate(msgs, SamplingParams(max_new_tokens=max_new))

    words = 10
    while asyncio.run(engine.count_tokens([{"role": "user", "content": "lamp " * words}])) < engine.context - 8:
        words += 50 if asyncio.run(engine.count_tokens([{"role": "user", "content": "lamp " * (words + 50)}])) \
            < engine.context - 8 else 1
    n_prompt, gen = asyncio.run(fill(words, 200))
    assert engine.context - 8 <= n_prompt < engine.context
    assert gen.completion_tokens == generated[-1] == engine.context - n_prompt and gen.finish_reason == "length"
    with pytest.raises(ContextTooLong, match=f"at most {engine.context}"):
        asyncio.run(engine.generate([{"role": "user", "content": "lamp " * 3000}], SamplingParams()))
    # a client's own max_tokens is not cut: over the window with the prompt, it is refused as OpenAI does
    with pytest.raises(ContextTooLong, match=f"maximum context length is {engine.context} tokens.*"
                                             f"{n_prompt + 200} tokens \\({n_prompt} in the messages"):
        asyncio.run(engine.generate([{"role": "user", "content": "lamp " * words}],
                                    SamplingParams(max_new_tokens=200, requested=True)))


def test_bytes_that_never_complete_a_character_still_reach_the_stream(tiny_base):
    import torch

    from serving.engines.hf import _Detokenizer
    from training.base_model import load_tokenizer

    tok = load_tokenizer(str(tiny_base))
    lead = tok.convert_tokens_to_ids("æ")  # byte 0xE6: the first of a 3-byte character, alone
    ids = [*tok.encode("Hi", add_special_tokens=False), lead]
    assert tok.decode(ids).endswith("\ufffd")
    sent = []
    d = _Detokenizer(tok, lambda delta: sent.append(delta.text))
    d.put(torch.tensor([0]))  # the prompt
    for i in ids:
        d.put(torch.tensor([i]))
    assert "".join(sent) == "Hi"  # held back while the character might still complete
    d.end()
    assert "".join(sent) == tok.decode(ids, skip_special_tokens=True)


def test_a_closed_engine_is_not_ready(merged_model, no_onboard_env):
    """/readyz: 503 with the reason once the engine is closed (a server shutting down), 200 before."""
    engine = TransformersEngine(merged_model)
    app = create_app(ServeSettings(model=merged_model, rag_k=0), engine=engine)
    with serve_in_thread(app) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
        asyncio.run(engine.close())
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and "closed" in r.json()["reasons"][0]


def test_a_shutdown_gives_answers_in_flight_a_bounded_time(engine, generated, merged_model, no_onboard_env):
    """SIGTERM (uvicorn's should_exit, which its signal handler sets) waits drain_seconds for an answer in
    flight, then cancels it: the generation stops and the server exits (it used to wait for the answer)."""
    import uvicorn

    from serving.app import server_config

    longest = engine.context - 64  # with EOS suppressed, a generation this long takes far longer than the drain
    settings = ServeSettings(model=merged_model, rag_k=0, max_new_tokens=longest, drain_seconds=1, port=free_port())
    server = uvicorn.Server(server_config(create_app(settings, engine=engine), settings, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)
    body = {"model": "merged", "messages": MSGS, "max_tokens": longest, "stream": True}
    client = threading.Thread(target=lambda: _drain_stream(f"http://127.0.0.1:{settings.port}", body), daemon=True)
    client.start()
    assert generated.started.wait(60)
    t0 = time.monotonic()
    server.should_exit = True
    thread.join(60)
    assert not thread.is_alive() and time.monotonic() - t0 < 30
    deadline = time.monotonic() + 30
    while not generated and time.monotonic() < deadline:  # the worker thread ends at its next token
        time.sleep(0.05)
    assert generated and generated[0] < longest, generated


def _drain_stream(base: str, body: dict) -> None:
    try:
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=120) as r:
            for _ in r.iter_lines():
                pass
    except httpx.HTTPError:
        pass  # the server cut the stream at shutdown


def test_a_request_over_the_queue_limit_is_refused_at_once_with_retry_after(engine, no_onboard_env, merged_model,
                                                                          monkeypatch):
    """max_queue=1: while one answer is being generated, the next chat request gets 503 with Retry-After at once
    (other endpoints still answer); once that answer is sent the server takes requests again."""
    from serving.engines.decode import Rows

    started, release = threading.Event(), threading.Event()
    original = Rows.join

    def held(rows, requests):  # the decode loop starts generating only when the test says so
        started.set()
        release.wait(60)
        return original(rows, requests)

    monkeypatch.setattr(Rows, "join", held)
    app = create_app(ServeSettings(model=merged_model, rag_k=0, max_queue=1), engine=engine)
    with serve_in_thread(app) as base:
        body = {"model": "merged", "messages": MSGS, "max_tokens": 8}
        first: list[httpx.Response] = []
        client = threading.Thread(target=lambda: first.append(httpx.post(f"{base}/v1/chat/completions", json=body,
                                                                         timeout=60)))
        client.start()
        assert started.wait(60)
        t0 = time.monotonic()
        busy = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
        assert time.monotonic() - t0 < 5 and busy.status_code == 503
        assert busy.json()["error"]["code"] == "server_overloaded" and int(busy.headers["retry-after"]) >= 1
        assert httpx.get(f"{base}/v1/models").status_code == 200
        ready = httpx.get(f"{base}/readyz")  # a load balancer sends the next requests elsewhere
        assert ready.status_code == 503 and "queue is full" in ready.json()["reasons"][0]
        release.set()
        client.join(60)
        assert first[0].status_code == 200
        assert httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60).status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200


def test_a_request_past_its_deadline_is_stopped_streamed_or_not(engine, generated, no_onboard_env, merged_model):
    """request_timeout: an answer not begun by then is a 504; a stream past it ends with an error event; both
    generations stop (EOS suppressed: they would run to max_tokens)."""
    longest = engine.context - 64
    settings = ServeSettings(model=merged_model, rag_k=0, max_new_tokens=longest, request_timeout=1.0)
    with serve_in_thread(create_app(settings, engine=engine)) as base:
        body = {"model": "merged", "messages": MSGS, "max_tokens": longest}
        t0 = time.monotonic()
        late = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
        assert late.status_code == 504 and late.json()["error"]["code"] == "timeout" and time.monotonic() - t0 < 10
        with httpx.stream("POST", f"{base}/v1/chat/completions", json={**body, "stream": True}, timeout=60) as r:
            assert r.status_code == 200
            data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
        assert json.loads(data[-2])["error"]["code"] == "timeout" and data[-1] == "[DONE]"
        deadline = time.monotonic() + 30
        while len(generated) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(generated) == 2 and max(generated) < longest, generated
