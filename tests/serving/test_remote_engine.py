"""The remote engine for real: our app with the transformers engine on the tiny merged model is the
upstream; a second Onboard started as deployments start it (`run(ServeSettings())`, engine=remote, no
model folder) forwards to it; the official openai client talks to the second."""

import asyncio
import json
import time

import httpx
import pytest
from openai import NotFoundError, OpenAI

from serving.app import create_app
from serving.engines import load_engine
from serving.engines.base import SamplingParams
from serving.engines.remote import RemoteEngine
from serving.errors import ModelNotLoaded, TokenCountUnavailable, UpstreamError
from serving.settings import ServeSettings
from tests.serving.servers import free_port, read_stream, serve_in_process, serve_in_thread, spy_generate

MSGS = [{"role": "user", "content": "退款多久能到账？"}]


@pytest.fixture(scope="module")
def upstream(merged_model):
    app = create_app(ServeSettings(model=merged_model, rag_k=0, max_new_tokens=400))
    with serve_in_thread(app) as base:
        yield base, app


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    env = {"ONBOARD_ENGINE": "remote", "ONBOARD_REMOTE_URL": f"{upstream[0]}/v1", "ONBOARD_REMOTE_MODEL": "merged",
           "ONBOARD_REMOTE_API_KEY": "sk-test-key", "ONBOARD_MAX_NEW_TOKENS": "400"}
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with serve_in_process(env, log) as base:
        yield base
    assert "sk-test-key" not in log.read_text()


def _client(base: str) -> OpenAI:
    return OpenAI(base_url=f"{base}/v1", api_key="test", max_retries=0)


def test_openai_client_gets_the_upstreams_answer(upstream, proxy):
    direct = _client(upstream[0]).chat.completions.create(model="merged", messages=MSGS, max_tokens=16)
    relayed = _client(proxy).chat.completions.create(model="merged", messages=MSGS, max_tokens=16)
    assert direct.usage.completion_tokens > 0
    assert relayed.choices[0].message.content == direct.choices[0].message.content  # greedy: the same text
    assert relayed.choices[0].finish_reason == direct.choices[0].finish_reason
    assert relayed.usage.prompt_tokens == direct.usage.prompt_tokens
    assert relayed.usage.completion_tokens == direct.usage.completion_tokens <= 16
    assert relayed.model == "merged" and relayed.model_extra["sources"] == []
    assert [m.id for m in _client(proxy).models.list().data] == ["merged", "all-MiniLM-L6-v2"]


def test_streaming_through_the_remote_engine(upstream, proxy):
    direct = _client(upstream[0]).chat.completions.create(model="merged", messages=MSGS, max_tokens=16)
    stream = _client(proxy).chat.completions.create(model="merged", messages=MSGS, max_tokens=16, stream=True)
    text, finish = read_stream(stream)
    assert text == direct.choices[0].message.content
    assert finish == direct.choices[0].finish_reason
    with httpx.stream("POST", f"{proxy}/v1/chat/completions",
                      json={"model": "merged", "messages": MSGS, "max_tokens": 4, "stream": True}) as r:
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and json.loads(data[0])["choices"][0]["delta"]["role"] == "assistant"


def test_logprobs_are_the_upstreams_own_streamed_or_not(upstream, proxy):
    """logprobs/top_logprobs are asked of the upstream and relayed as it gave them."""
    ask = {"model": "merged", "messages": MSGS, "max_tokens": 8, "logprobs": True, "top_logprobs": 2}
    direct = _client(upstream[0]).chat.completions.create(**ask).choices[0].logprobs.content
    relayed = _client(proxy).chat.completions.create(**ask).choices[0].logprobs.content
    assert direct and [(t.token, t.bytes, [x.token for x in t.top_logprobs]) for t in relayed] == \
        [(t.token, t.bytes, [x.token for x in t.top_logprobs]) for t in direct]
    assert [t.logprob for t in relayed] == pytest.approx([t.logprob for t in direct])
    streamed = [t for c in _client(proxy).chat.completions.create(**ask, stream=True)
                if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [t.token for t in streamed] == [t.token for t in direct]


def test_errors_keep_the_one_shape(proxy):
    with pytest.raises(NotFoundError, match="not served here"):
        _client(proxy).chat.completions.create(model="gpt-9", messages=MSGS)
    r = httpx.post(f"{proxy}/v1/chat/completions", json={"model": "merged", "messages": [{"role": "wizard", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].role"


def test_count_tokens_is_exact_or_refused(upstream):
    base, app = upstream
    engine = RemoteEngine(f"{base}/v1", "merged")
    local = app.state.engine

    async def counts():
        try:
            return await engine.count_tokens(MSGS), await local.count_tokens(MSGS)
        finally:
            await engine.close()

    remote_n, local_n = asyncio.run(counts())
    assert remote_n == local_n == local._inputs(MSGS)["input_ids"].shape[1]
    no_tokenizer = RemoteEngine(f"{base}/elsewhere/v1")  # an upstream without /tokenize (as llama.cpp, OpenAI)
    with pytest.raises(TokenCountUnavailable, match="No estimate"):
        asyncio.run(no_tokenizer.count_tokens(MSGS))


def test_start_up_checks_the_upstream(upstream, no_onboard_env):
    settings = ServeSettings(engine="remote", remote_url=f"{upstream[0]}/v1", remote_model="llama-70b")
    with pytest.raises(ModelNotLoaded, match="serves \\['merged', 'all-MiniLM-L6-v2'\\], not 'llama-70b'"):
        load_engine(settings)
    unnamed = RemoteEngine(f"{upstream[0]}/v1")  # requests name a model: the upstream's chat model, not its embedder
    unnamed.check()
    assert unnamed.model == "merged"
    nobody = ServeSettings(engine="remote", remote_url=f"http://127.0.0.1:{free_port()}/v1", remote_model="m")
    with pytest.raises(UpstreamError, match="did not answer"):
        load_engine(nobody)


def test_a_client_leaving_stops_the_upstreams_generation(upstream, no_onboard_env, monkeypatch):
    """Client → remote engine → upstream: closing the first connection stops the model at the far end."""
    base, app = upstream
    generated = spy_generate(app.state.engine, monkeypatch)
    proxy_app = create_app(ServeSettings(engine="remote", remote_url=f"{base}/v1", remote_model="merged",
                                         max_new_tokens=400))
    with serve_in_thread(proxy_app) as proxy_base:
        body = {"model": "merged", "messages": MSGS, "max_tokens": 400, "stream": True}
        with httpx.stream("POST", f"{proxy_base}/v1/chat/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    break  # the first piece of text: leave
        deadline = time.monotonic() + 60
        while not generated and time.monotonic() < deadline:
            time.sleep(0.05)
    assert generated and generated[0] < 100, generated  # forced to 400 tokens unless stopped


def test_sampling_params_reach_the_upstream(upstream):
    """max_tokens is relayed: a 3-token answer upstream is a 3-token answer here; so are response_format (the
    upstream's constrained decoding makes the tiny model write JSON) and tools (a forced call comes back as one)."""
    engine = RemoteEngine(f"{upstream[0]}/v1", "merged")
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {
        "type": "object", "properties": {"refund": {"type": "boolean"}}, "required": ["refund"]}}}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"urgent": {"type": "boolean"}}, "required": ["urgent"]}}}]
    forced = {"type": "function", "function": {"name": "lookup"}}

    async def gen():
        try:
            return (await engine.generate(MSGS, SamplingParams(max_new_tokens=3)),
                    await engine.generate(MSGS, SamplingParams(max_new_tokens=64, response_format=fmt)),
                    await engine.generate(MSGS, SamplingParams(max_new_tokens=160, tools=tools, tool_choice=forced)),
                    [d async for d in engine.stream(MSGS, SamplingParams(max_new_tokens=160, tools=tools,
                                                                         tool_choice=forced))],
                    [d async for d in engine.stream(MSGS, SamplingParams(max_new_tokens=24, tools=tools))])
        finally:
            await engine.close()

    g, j, t, streamed, auto = asyncio.run(gen())
    assert g.completion_tokens <= 3 and g.finish_reason in ("stop", "length")
    assert isinstance(json.loads(j.text)["refund"], bool)
    assert t.finish_reason == "tool_calls" and [c.name for c in t.tool_calls] == ["lookup"]
    assert isinstance(json.loads(t.tool_calls[0].arguments)["urgent"], bool)
    # streamed, the call arrives on the last delta, as the upstream's fragments add up
    assert streamed[-1].finish_reason == "tool_calls" and \
        [(c.name, c.arguments) for c in streamed[-1].tool_calls] == [("lookup", t.tool_calls[0].arguments)]
    # tool_choice auto, the tiny model writes text: it streams through as written
    assert len([d for d in auto if d.text]) > 3 and auto[-1].tool_calls is None


def test_streamed_tool_call_fragments_add_up_to_the_calls():
    """OpenAI's (and vLLM's) streamed calls: id and name in a call's first fragment, its arguments in pieces,
    calls told apart by index."""
    from serving.engines.remote import _gather, _tool_calls

    calls: dict = {}
    for part in [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}},
                 {"index": 0, "function": {"arguments": '{"city": '}}, {"index": 1, "id": "call_b",
                  "function": {"name": "g", "arguments": "{}"}}, {"index": 0, "function": {"arguments": '"巴黎"}'}}]:
        _gather(calls, part)
    got = _tool_calls([calls[i] for i in sorted(calls)])
    assert [(c.id, c.name, json.loads(c.arguments)) for c in got] == [("call_a", "f", {"city": "巴黎"}),
                                                                       ("call_b", "g", {})]


def test_ready_only_while_the_upstream_answers(proxy, no_onboard_env):
    """/readyz: 200 while the upstream answers; 503 naming it when nothing listens there (/healthz stays 200:
    the process itself is alive)."""
    assert httpx.get(f"{proxy}/readyz").json() == {"status": "ready", "model": "merged", "rag": False, "chunks": None}
    dead = f"http://127.0.0.1:{free_port()}/v1"
    app = create_app(ServeSettings(engine="remote", remote_url=dead, remote_model="m", rag_k=0),
                     engine=RemoteEngine(dead, "m"))
    with serve_in_thread(app) as base:
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and r.json()["status"] == "not ready"
        assert dead in r.json()["reasons"][0] and "did not answer" in r.json()["reasons"][0]
        assert httpx.get(f"{base}/healthz").status_code == 200


def test_an_upstream_that_returns_no_logprobs_when_asked_is_out_of_contract():
    from serving.engines.remote import _Choice

    engine = RemoteEngine("http://127.0.0.1:9/v1", "m")
    plain = _Choice.model_validate({"message": {"content": "hi"}, "finish_reason": "stop"})
    assert engine._logprobs(plain, SamplingParams()) is None  # not asked: none wanted
    with pytest.raises(UpstreamError, match="returned no logprobs although they were asked for"):
        engine._logprobs(plain, SamplingParams(logprobs=0))
