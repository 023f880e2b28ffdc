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
