"""engine=llamacpp: `onboard serve` on a GGUF export starts llama.cpp's server (llama-cpp-python) as its child
and forwards to it, with this server's retrieval and API; closing stops the child.

llama-cpp-python is an extra (`make setup LLAMACPP=1`): the test runs with the Python it is in, this one or
ONBOARD_LLAMACPP_PYTHON's, and is skipped where there is none (CI)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serving.app import create_app
from serving.settings import ServeSettings
from tests.serving.servers import serve_in_thread

PYTHON = os.environ.get("ONBOARD_LLAMACPP_PYTHON") or sys.executable
HAS_LLAMACPP = subprocess.run([PYTHON, "-c", "import llama_cpp.server"], capture_output=True).returncode == 0
needs_llamacpp = pytest.mark.skipif(not HAS_LLAMACPP, reason=f"no llama-cpp-python server in {PYTHON}: `make setup "
                                                             "LLAMACPP=1`, or set ONBOARD_LLAMACPP_PYTHON")


@pytest.fixture(scope="module")
def gguf(merged_model, tmp_path_factory):
    from training.export import ExportConfig, run

    out = tmp_path_factory.mktemp("gguf") / "shop.gguf"
    run(ExportConfig(model=merged_model, out=out, format="gguf", gguf_dtype="f16"))
    return out


@needs_llamacpp
def test_a_gguf_is_served_by_llamacpp_with_retrieval_and_stopped_with_the_server(gguf, workspace, monkeypatch):
    for k in [k for k in os.environ if k.startswith("ONBOARD_")]:
        monkeypatch.delenv(k)
    settings = ServeSettings(engine="llamacpp", model=gguf, workspace=workspace, rag_k=2, llamacpp_python=PYTHON,
                             threads=2)
    from serving.engines import load_engine

    engine = load_engine(settings)
    child = engine._child
    try:
        with serve_in_thread(create_app(settings, engine=engine)) as base:
            ask = {"model": "shop", "messages": [{"role": "user", "content": "How long do I have to return an item?"}],
                   "max_tokens": 24}
            r = httpx.post(f"{base}/v1/chat/completions", json=ask, timeout=120).json()
            assert r["choices"][0]["message"]["content"] and len(r["sources"]) == 2
            assert r["usage"]["completion_tokens"] > 0
            streamed = {**ask, "stream": True, "stream_options": {"include_usage": True}}
            with httpx.stream("POST", f"{base}/v1/chat/completions", json=streamed, timeout=120) as s:
                lines = [line for line in s.iter_lines() if line.startswith("data: ")]
            assert lines[-1] == "data: [DONE]" and len(lines) > 3
            # llama.cpp sends no usage in streams: counted here, exactly as llama.cpp counts (the same greedy answer)
            assert json.loads(lines[-2].removeprefix("data: "))["usage"] == r["usage"]
            counted = httpx.post(f"{base}/tokenize", json={"model": "shop", "messages": ask["messages"]}).json()
            assert counted["count"] > 0
            assert httpx.get(f"{base}/readyz").status_code == 200
    finally:
        asyncio.run(engine.close())
    assert child.poll() is not None  # the llama.cpp server stopped with the engine


def test_a_gguf_engine_without_a_gguf_is_refused_by_name(tmp_path):
    from serving.errors import BadSetting

    with pytest.raises(BadSetting, match="model: engine 'llamacpp' serves a .gguf file"):
        ServeSettings(engine="llamacpp", model=tmp_path)


@needs_llamacpp
def test_a_llamacpp_server_that_dies_is_named_with_its_exit_and_log(gguf, monkeypatch):
    from serving.engines.base import SamplingParams
    from serving.engines.llamacpp import LlamaCppEngine
    from serving.errors import UpstreamError

    engine = LlamaCppEngine(gguf, PYTHON, threads=2)
    try:
        engine._child.kill()  # as a crash inside llama.cpp would end it
        engine._child.wait()
        with pytest.raises(UpstreamError, match=r"llama.cpp's server exited \(-9\)"):
            asyncio.run(engine.generate([{"role": "user", "content": "hi"}], SamplingParams(max_new_tokens=4)))
        assert "exited" in asyncio.run(engine.ready())
    finally:
        asyncio.run(engine.close())


TOOLS = [{"type": "function", "function": {"name": "order_status", "description": "Where a customer's order is",
                                           "parameters": {"type": "object", "properties": {
                                               "order": {"type": "integer"}}, "required": ["order"]}}}]


def _tool_answers(gguf: Path, question: str, max_tokens: int):
    """Through a server on `gguf` with the llama.cpp engine (no retrieval), the official openai client asks
    `question` with TOOLS: (named call, auto, auto streamed as (content pieces, calls, finish reason), the 400 for
    required)."""
    from openai import BadRequestError, OpenAI

    from serving.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(gguf, PYTHON, threads=2)
    settings = ServeSettings(model=gguf, engine="llamacpp", rag_k=0, llamacpp_python=PYTHON)
    ask = {"model": gguf.stem, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
           "tools": TOOLS}
    try:
        with serve_in_thread(create_app(settings, engine=engine)) as base:
            client = OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
            named = client.chat.completions.create(  # room for the arguments whatever max_tokens the rest has
                **{**ask, "max_tokens": 96}, tool_choice={"type": "function", "function": {"name": "order_status"}})
            auto = client.chat.completions.create(**ask)
            every = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
            chunks = [c for c in every if c.choices]
            streamed = ([c.choices[0].delta.content for c in chunks if c.choices[0].delta.content],
                        [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])],
                        chunks[-1].choices[0].finish_reason, every[-1].usage)
            with pytest.raises(BadRequestError) as refused:
                client.chat.completions.create(**ask, tool_choice="required")
    finally:
        asyncio.run(engine.close())
    return named, auto, streamed, refused.value.body


@needs_llamacpp
def test_tools_through_llamacpp_are_called_read_back_or_refused_by_name(gguf, no_onboard_env):
    """A named tool_choice: llama.cpp's grammar makes the tiny model call it, arguments valid for the schema; auto:
    the tiny model writes text, streamed as written and the same as asked whole; required, which llama.cpp's
    server cannot force: a 400 naming tool_choice."""
    named, auto, (pieces, calls, finish, usage), refused = _tool_answers(gguf, "Where is my order 1234?", 24)
    (call,) = named.choices[0].message.tool_calls
    assert call.function.name == "order_status", call
    assert isinstance(json.loads(call.function.arguments)["order"], int), call.function.arguments
    assert named.choices[0].finish_reason == "tool_calls"
    assert auto.choices[0].message.tool_calls is None and calls == []
    assert "".join(pieces) == auto.choices[0].message.content and finish == auto.choices[0].finish_reason
    # llama.cpp's server sends no usage in streams: counted here as it counts, the tools in the prompt included
    assert usage == auto.usage and usage.prompt_tokens > 100
    assert refused["param"] == "tool_choice" and "name the function" in refused["message"]


@pytest.mark.slow
@needs_llamacpp
def test_the_05b_model_calls_a_tool_through_llamacpp_when_it_chooses_to(tmp_path, no_onboard_env):
    """tool_choice auto with the real 0.5B model (q8_0): llama-cpp-python returns the model's call as text (its
    bare JSON: <tool_call> is a control token, left out of llama.cpp's text); the engine reads it back as a call,
    asked whole and streamed alike."""
    from training.export import ExportConfig, run
    from training.fetch import default_cache

    qwen = default_cache("qwen2.5-coder-0.5b-instruct") / "hf"
    if not (qwen / "config.json").is_file():
        pytest.skip(f"no 0.5B model in {qwen}: `onboard base fetch qwen2.5-coder-0.5b-instruct`")
    gguf = tmp_path / "qwen.gguf"
    run(ExportConfig(model=qwen, out=gguf, format="gguf", gguf_dtype="q8_0"))
    _, auto, (_, calls, finish, _), _ = _tool_answers(gguf, "Where is my order 1234?", 64)
    assert auto.choices[0].message.tool_calls, auto.choices[0].message
    (call,) = auto.choices[0].message.tool_calls
    assert call.function.name == "order_status" and json.loads(call.function.arguments) == {"order": 1234}
    assert auto.choices[0].finish_reason == "tool_calls" and finish == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in calls] == [("order_status", call.function.arguments)]
