"""Serving settings: arguments and ONBOARD_* variables, errors that name the setting, the RAG k read
from the model card at start-up."""

import subprocess
import sys

import pytest

from rag.errors import BadContract, BadOption, OnboardError
from rag.model_card import ModelCard, RagContract
from rag.prompt import DEFAULT_K, PROMPT_LAYOUT
from serving.errors import BadSetting, ServingError
from serving.settings import ServeSettings, resolve_rag_k


def test_every_setting_is_documented():
    assert all(f.description for f in ServeSettings.model_fields.values())


def test_defaults_and_the_workspace_model(no_onboard_env, tmp_path):
    s = ServeSettings(workspace=tmp_path)
    assert s.engine == "transformers" and s.model == tmp_path / "models" / "merged"
    assert (s.host, s.port, s.max_new_tokens, s.rag_k, s.threads) == ("127.0.0.1", 8000, 256, None, None)
    assert s.served_name == "merged"
    assert ServeSettings(model=tmp_path, model_name="shop").served_name == "shop"


def test_environment_fills_what_arguments_leave(no_onboard_env, monkeypatch, tmp_path):
    monkeypatch.setenv("ONBOARD_MODEL", str(tmp_path))
    monkeypatch.setenv("ONBOARD_PORT", "9001")
    monkeypatch.setenv("ONBOARD_RAG_K", "0")
    s = ServeSettings(port=9002)
    assert (s.model, s.port, s.rag_k) == (tmp_path, 9002, 0)


@pytest.mark.parametrize("kwargs, named", [
    ({"port": "eighty"}, "port (env ONBOARD_PORT)"),
    ({"rag_k": -1}, "rag_k (env ONBOARD_RAG_K)"),
    ({"engine": "vllm"}, "engine (env ONBOARD_ENGINE)"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"remote_url": "ftp://x"}, "remote_url"),
    ({"no_such_setting": 1}, "no_such_setting"),
])
def test_a_bad_setting_is_named(no_onboard_env, tmp_path, kwargs, named):
    with pytest.raises(BadSetting, match=named.replace("(", r"\(").replace(")", r"\)")) as e:
        ServeSettings(model=tmp_path, **kwargs)
    assert isinstance(e.value, ServingError) and isinstance(e.value, BadOption) and isinstance(e.value, OnboardError)


def test_a_bad_environment_variable_is_named(no_onboard_env, monkeypatch, tmp_path):
    monkeypatch.setenv("ONBOARD_MAX_REQUEST_BYTES", "lots")
    with pytest.raises(BadSetting, match="max_request_bytes .env ONBOARD_MAX_REQUEST_BYTES.*'lots'"):
        ServeSettings(model=tmp_path)


def test_engines_say_what_they_need(no_onboard_env, tmp_path):
    with pytest.raises(BadSetting, match="^model: .*ONBOARD_MODEL"):
        ServeSettings()
    with pytest.raises(BadSetting, match="^remote_url: .*ONBOARD_REMOTE_URL"):
        ServeSettings(engine="remote", remote_model="m")
    with pytest.raises(BadSetting, match="^model_name: .*ONBOARD_REMOTE_MODEL"):
        ServeSettings(engine="remote", remote_url="http://127.0.0.1:1/v1")
    s = ServeSettings(engine="remote", remote_url="http://127.0.0.1:1/v1/", remote_model="qwen")
    assert (s.model, s.remote_url, s.served_name) == (None, "http://127.0.0.1:1/v1", "qwen")


def test_the_api_key_is_never_shown(no_onboard_env, tmp_path):
    s = ServeSettings(engine="remote", remote_url="http://h/v1", remote_model="m", remote_api_key="sk-secret-1")
    assert "sk-secret-1" not in repr(s) and "sk-secret-1" not in str(s.model_dump())
    assert s.remote_api_key.get_secret_value() == "sk-secret-1"
    with pytest.raises(BadSetting) as e:
        ServeSettings(engine="remote", remote_url="http://h/v1", remote_model="m", remote_api_key=["sk-secret-2"])
    assert "remote_api_key" in str(e.value) and "sk-secret-2" not in str(e.value)


def test_serving_uses_as_many_chunks_as_the_model_was_trained_with(no_onboard_env, tmp_path):
    ModelCard(kind="onboard-merged", rag=RagContract(context_chunks=4, prompt_layout=PROMPT_LAYOUT)).write(tmp_path)
    assert resolve_rag_k(ServeSettings(model=tmp_path)) == 4
    assert resolve_rag_k(ServeSettings(model=tmp_path, rag_k=2)) == 2


def test_a_model_trained_without_context_is_served_without(no_onboard_env, tmp_path):
    ModelCard(kind="onboard-merged", rag=RagContract(context_chunks=0, prompt_layout=PROMPT_LAYOUT)).write(tmp_path)
    assert resolve_rag_k(ServeSettings(model=tmp_path)) == 0


def test_without_a_card_or_its_rag_contract_the_default_k(no_onboard_env, tmp_path):
    assert resolve_rag_k(ServeSettings(model=tmp_path)) == DEFAULT_K
    ModelCard(kind="onboard-tiny").write(tmp_path)
    assert resolve_rag_k(ServeSettings(model=tmp_path)) == DEFAULT_K
    remote = ServeSettings(engine="remote", remote_url="http://h/v1", remote_model="m")
    assert resolve_rag_k(remote) == DEFAULT_K


def test_a_card_of_an_unknown_schema_is_refused_at_start_up(no_onboard_env, tmp_path):
    from rag.model_card import CARD_FILE

    (tmp_path / CARD_FILE).write_text('{"schema_version": 99, "kind": "onboard-merged"}')
    s = ServeSettings(model=tmp_path)  # constructing settings reads nothing
    with pytest.raises(BadContract, match="schema_version 99"):
        resolve_rag_k(s)


def test_importing_serving_loads_no_model_library():
    code = ("import sys, serving.app, serving.engines, serving.engines.remote, serving.settings; "
            "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'chromadb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
