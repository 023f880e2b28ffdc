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
