"""`serving.app.run`: what stops start-up reaches the caller (the CLI) as the error it is."""

import pytest

from rag.errors import BadContract
from rag.model_card import CARD_FILE
from serving.app import run
from serving.errors import ModelNotLoaded, UpstreamError
from serving.settings import ServeSettings
from tests.serving.servers import free_port


def test_a_folder_that_is_no_model_is_refused_before_start(no_onboard_env, tmp_path):
    with pytest.raises(ModelNotLoaded, match="no config.json"):
        run(ServeSettings(model=tmp_path, port=free_port()))


def test_a_card_of_an_unknown_schema_stops_start_up(no_onboard_env, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / CARD_FILE).write_text('{"schema_version": 99, "kind": "onboard-merged"}')
    with pytest.raises(BadContract, match="schema_version 99"):
        run(ServeSettings(model=tmp_path, port=free_port()))


def test_an_unreachable_upstream_stops_start_up_with_its_own_error(no_onboard_env):
    """The remote engine needs no model folder; the failure in the lifespan is re-raised by `run`."""
    settings = ServeSettings(engine="remote", remote_url=f"http://127.0.0.1:{free_port()}/v1", remote_model="m",
                             port=free_port())
    with pytest.raises(UpstreamError, match="did not answer GET /models"):
        run(settings)


def test_a_model_trained_with_context_is_not_served_without_an_index(no_onboard_env, merged_model):
    """Issue 11, item 1: no silent answers without documents."""
    from serving.errors import NoIndex

    with pytest.raises(NoIndex, match=r"trained on prompts holding 3 retrieved chunks.*onboard ingest.*--rag-k 0"):
        run(ServeSettings(model=merged_model, port=free_port()))
    with pytest.raises(NoIndex, match="rag_k is 2"):
        run(ServeSettings(model=merged_model, rag_k=2, port=free_port()))


def test_rag_k_0_serves_the_same_model_without_documents_on_purpose(no_onboard_env, merged_model):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    with TestClient(create_app(ServeSettings(model=merged_model, rag_k=0))) as client:
        assert client.get("/healthz").json()["rag"] is False


def test_the_workspace_prompt_is_served_and_a_model_trained_with_another_is_warned_about(
        no_onboard_env, merged_model, workspace, tmp_path, caplog):
    """Issue 13: the server asks with the workspace's wording (prompt.yaml) in the question's language."""
    import asyncio
    import shutil

    from fastapi.testclient import TestClient

    from rag.prompt import build_rag_messages, load_prompts
    from serving.app import create_app

    ws = tmp_path / "ws"
    for part in ("chroma", "bm25", "ingest.json"):
        (shutil.copytree if (workspace / part).is_dir() else shutil.copy)(workspace / part, ws / part)
    (ws / "prompt.yaml").write_text("system:\n  en: You are the Lumen & Oak helper. Use only the numbered "
                                    "context below and cite it like [1]; offer a colleague when it has no answer, "
                                    "and never repeat the question back.\n")
    question = "How long do I have to return an item?"
    with caplog.at_level("WARNING", logger="serving.settings"), \
            TestClient(create_app(ServeSettings(model=merged_model, workspace=ws))) as client:
        r = client.post("/v1/chat/completions", json={"model": "merged", "messages": [{"role": "user", "content": question}],
                                                       "max_tokens": 1})
        assert r.status_code == 200, r.text
        state = client.app.state
        hits = state.retriever.search(question, state.rag_k)
        mine = build_rag_messages([{"role": "user", "content": question}], hits, prompts=load_prompts(ws))
        assert r.json()["usage"]["prompt_tokens"] == asyncio.run(state.engine.count_tokens(mine))
        builtin = build_rag_messages([{"role": "user", "content": question}], hits)
        assert asyncio.run(state.engine.count_tokens(builtin)) != r.json()["usage"]["prompt_tokens"]
    assert "the model was trained with prompt system-context-v2:" in caplog.text and "prompt.yaml" in caplog.text


def test_query_expansion_hyde_retrieves_with_the_served_models_hypothetical_answer(no_onboard_env, merged_model,
                                                                                   workspace):
    from fastapi.testclient import TestClient
    from starlette.concurrency import run_in_threadpool

    from rag import hyde
    from serving.app import create_app
    from serving.engines.base import SamplingParams

    question = "How long do I have to return an item?"
    with TestClient(create_app(ServeSettings(model=merged_model, workspace=workspace, query_expansion="hyde"))) as c:
        model = c.get("/v1/models").json()["data"][0]["id"]
        r = c.post("/v1/chat/completions", json={"model": model, "max_tokens": 4,
                                                 "messages": [{"role": "user", "content": question}]})
        assert r.status_code == 200 and r.json()["sources"]
        engine, asked = c.app.state.engine, []
        generate = engine.generate

        async def noted(messages, params):  # the real engine, its requests noted
            asked.append((messages, params.max_new_tokens))
            return await generate(messages, params)

        engine.generate = noted
        hits = c.portal.call(run_in_threadpool, c.app.state.retriever.search, question, 3)
        wrote = c.portal.call(generate, hyde.messages(question), SamplingParams(hyde.MAX_TOKENS)).text.strip()
    assert asked == [(hyde.messages(question), hyde.MAX_TOKENS)] and hits  # the served model was asked first
    assert hits[0].metadata.get("hypothesis", "") == wrote  # (the tiny model may write only blank lines: none then)


def test_query_expansion_hyde_without_retrieval_is_refused(no_onboard_env, merged_model):
    from serving.errors import BadSetting

    with pytest.raises(BadSetting, match="query_expansion hyde: this server retrieves nothing"):
        run(ServeSettings(model=merged_model, rag_k=0, query_expansion="hyde", port=free_port()))
