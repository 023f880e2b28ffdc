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
