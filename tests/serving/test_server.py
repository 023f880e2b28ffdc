"""The API server as users meet it: a real uvicorn process, called with the official openai client."""

import json
import sys

import httpx
import pytest
from openai import NotFoundError, OpenAI

from tests.serving.servers import read_stream, serve_in_process

LOG: dict = {}


@pytest.fixture(scope="module")
def server(merged_model, workspace, tmp_path_factory):
    """`onboard serve` as a user starts it (its port from ONBOARD_PORT, which the option reads)."""
    argv = [sys.executable, "-m", "agent.cli", "serve", "--workspace", str(workspace), "--model", str(merged_model),
            "--max-new-tokens", "24"]
    LOG["path"] = tmp_path_factory.mktemp("server") / "server.log"
    with serve_in_process({"ONBOARD_THREADS": "2"}, LOG["path"], argv) as base:
        yield base


@pytest.fixture()
def client(server):
    return OpenAI(base_url=f"{server}/v1", api_key="test", max_retries=0)


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == ["merged", "all-MiniLM-L6-v2"]
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok", "model": "merged", "rag": True}
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["chunks"] > 0


def test_chat_completion_carries_sources_of_the_right_document(client):
    r = client.chat.completions.create(model="merged", messages=[{"role": "user", "content": "How long is the warranty on lamps?"}])
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 24 and r.usage.prompt_tokens > 50  # the prompt holds the context
    sources = r.model_extra["sources"]
    assert sources[0]["source"] == "warranty.md"
    assert {"id", "source", "heading_path", "score", "snippet"} <= set(sources[0])


def test_streaming_matches_non_streaming_and_ends_with_done(server, client):
    msgs = [{"role": "user", "content": "退款多久能到账？"}]
    full = client.chat.completions.create(model="merged", messages=msgs).choices[0].message.content
    stream = client.chat.completions.create(model="merged", messages=msgs, stream=True)
    text, finish = read_stream(stream)
    assert text == full  # greedy: same text, no broken characters between chunks
    assert finish in ("stop", "length")
    with httpx.stream("POST", f"{server}/v1/chat/completions", json={"model": "merged", "messages": msgs, "stream": True}) as r:
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert json.loads(data[0])["sources"][0]["source"].startswith("zh/")


def test_errors_share_one_shape(server, client):
    with pytest.raises(NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    r = httpx.post(f"{server}/v1/chat/completions", json={"model": "merged", "messages": [{"role": "wizard", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["param"] == "messages[0].role"
    big = httpx.post(f"{server}/v1/chat/completions", content=b"x" * 1_000_001,
                     headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    # sent in chunks (no Content-Length): counted as it arrives, refused the same
    chunked = httpx.post(f"{server}/v1/embeddings", content=iter([b"x" * 400_000] * 3),
                         headers={"content-type": "application/json"})
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "request_too_large"
    small = json.dumps({"model": "all-MiniLM-L6-v2", "input": "hi", "encoding_format": "float"}).encode()
    ok = httpx.post(f"{server}/v1/embeddings", content=iter([small[:10], small[10:]]),
                    headers={"content-type": "application/json"})
    assert ok.status_code == 200 and len(ok.json()["data"][0]["embedding"]) == 384


def test_embeddings_endpoint_serves_the_index_model_to_openai_clients(server, client, embedder):
    import numpy as np

    texts = ["退款多久能到账？", "free shipping over $75"]
    remote = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # the client asks for base64
    local = np.array(embedder.embed(texts))
    got = np.array([d.embedding for d in remote.data])
    assert got.shape == (2, 384) and np.allclose(got, local, atol=1e-5)
    assert remote.usage.prompt_tokens > 0
    floats = httpx.post(f"{server}/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "hi", "encoding_format": "float"}).json()
    assert len(floats["data"][0]["embedding"]) == 384
    with pytest.raises(NotFoundError, match="not served here"):
        client.embeddings.create(model="text-embedding-3-large", input="x")


def test_ingest_and_search_through_a_remote_embedding_endpoint(server, docs_dir, tmp_path):
    from rag import RagConfig, Retriever, ingest

    cfg = RagConfig(workspace=tmp_path / "ws", embedding_url=f"{server}/v1")
    report = ingest(cfg, docs_dir)
    assert report.added > 0
    assert Retriever(cfg).search("How long is the furniture warranty?", k=1)[0].source in ("warranty.md", "faq.md")


def test_a_prompt_past_the_models_context_is_refused_streamed_or_not(server, client):
    """Issue 11, item 6: the engine never runs past the model's context (the tiny model reads 2,048)."""
    from openai import BadRequestError

    long = [{"role": "user", "content": "Tell me about the warranty on lamps and chairs. " * 1500}]
    for stream in (False, True):
        with pytest.raises(BadRequestError, match=r"prompt is \d+ tokens.*at most 2048") as e:
            client.chat.completions.create(model="merged", messages=long, stream=stream)
        assert e.value.body["code"] == "context_length_exceeded" and e.value.body["param"] == "messages"


def _sample(text: str, name: str, **labels) -> float:
    """One sample's value in a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # the exposition sorts them
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_tokens_first_tokens_and_errors_by_type(server, client):
    before = httpx.get(f"{server}/metrics").text
    r = httpx.post(f"{server}/v1/chat/completions", headers={"X-Request-Id": "support-42"},
                   json={"model": "merged", "messages": [{"role": "user", "content": "How long do refunds take, Zorblax?"}]})
    assert r.status_code == 200 and r.headers["x-request-id"] == "support-42"
    assert len(httpx.get(f"{server}/healthz", headers={"X-Request-Id": "bad id!"}).headers["x-request-id"]) == 32
    read_stream(client.chat.completions.create(model="merged", messages=[{"role": "user", "content": "Hi"}],
                                               stream=True))
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    httpx.get(f"{server}/no/such/{'x' * 8}")
    after = httpx.get(f"{server}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    m = after.text

    def grew(name, **labels):
        return _sample(m, name, **labels) - _sample(before, name, **labels)

    assert grew("onboard_requests_total", route="/v1/chat/completions", method="POST", status="200") == 2
    assert grew("onboard_tokens_total", kind="prompt") >= r.json()["usage"]["prompt_tokens"]
    assert grew("onboard_tokens_total", kind="completion") >= r.json()["usage"]["completion_tokens"] > 0
    assert grew("onboard_time_to_first_token_seconds_count") == 1  # the streamed answer
    assert grew("onboard_retrieval_seconds_count") == 2  # the two answered chats (the 404 was refused first)
    assert grew("onboard_errors_total", type="invalid_request_error", code="model_not_found") == 1
    assert grew("onboard_requests_total", route="other", method="GET", status="404") == 1  # not the raw path
    assert "/no/such" not in m and _sample(m, "onboard_queue_depth") == 0
    assert "Zorblax" not in LOG["path"].read_text()  # customers' words stay out of the logs by default


@pytest.mark.parametrize("text", ["plain words ", '"quoted", back\\slash\n\ttab ', "退款多久能到账？ ", "\u2028\x00 "])
def test_a_text_chunk_written_directly_is_the_json_of_the_chunk_model(text):
    from serving.protocol import DeltaMessage
    from serving.routes.chat import Chunks

    chunks = Chunks("shop-bot")
    assert json.loads(chunks.text(text)) == json.loads(chunks(DeltaMessage(content=text)))
    assert json.loads(chunks.text(text))["choices"][0]["delta"] == {"content": text}


def test_a_chunk_is_one_sse_event_whatever_line_separators_its_text_holds():
    """A frame is one `data:` line (JSON escapes CR and LF; U+2028, U+2029 and U+0085 stay as they are), read
    back exactly by an SSE client."""
    import re

    from serving.routes.chat import Chunks
    from serving.sse import frame

    text = "line\u2028sep\u2029par\x85nel \r\n 换行"
    raw = frame(Chunks("shop-bot").text(text)).decode()
    events = [e for e in re.split(r"(?:\r\n|\r|\n){2}", raw) if e]
    assert len(events) == 1
    data = "\n".join(line[len("data: "):] for line in re.split(r"\r\n|\r|\n", events[0]) if line.startswith("data: "))
    assert json.loads(data)["choices"][0]["delta"]["content"] == text
