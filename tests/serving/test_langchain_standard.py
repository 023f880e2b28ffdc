"""LangChain's own conformance suite for chat models (langchain-tests' ChatModelIntegrationTests), run through
LangChain's ChatOpenAI against a real Onboard server: invoke, stream, batch, async, usage (streamed too), stop
sequences, tool-call histories, tool_choice, structured output (json_schema) and JSON mode.

On the tiny model (default run) the tests of what only a real LLM can do are skipped by name: tool arguments
that answer the question, JSON strings that end before max_tokens, an agent loop. A `slow` class runs the
whole suite against the offline 0.5B model. `name` on a message is refused with a 400 by this server (its chat
templates do not render participant names, and an unrendered field is refused, never ignored), which
LangChain's test expects to be accepted: that one is skipped with its reason in both.
"""

from __future__ import annotations

import functools
import inspect

import openai
import pytest
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests

from serving.app import create_app
from serving.settings import ServeSettings
from tests.serving.servers import serve_in_thread
from training.fetch import default_cache

QWEN = default_cache("qwen2.5-coder-0.5b-instruct") / "hf"
NAME_REFUSED = ("Onboard refuses messages[i].name with a 400 naming it: its chat templates do not render "
                "participant names, and a field that is not used is refused, never ignored")
TINY_CANNOT = ("the tiny model writes no JSON string that ends nor tool arguments that answer; the tool calls run in "
               "the slow 0.5B class")


JSON_TESTS = ["test_structured_output", "test_structured_output_async", "test_structured_output_pydantic_2_v1",
              "test_structured_output_optional_param", "test_json_mode"]


def _expected_failure(name: str, reason: str, raises):
    """LangChain's test `name`, marked as failing for `reason` with `raises` (strict: a pass fails the run, and
    so does any other error); the suite accepts overrides only as such xfails."""
    base = getattr(ChatModelIntegrationTests, name)
    if inspect.iscoroutinefunction(base):
        async def test(self, *args, **kwargs):
            return await base(self, *args, **kwargs)
    else:
        def test(self, *args, **kwargs):
            return base(self, *args, **kwargs)
    return pytest.mark.xfail(reason=reason, strict=True, raises=raises)(functools.wraps(base)(test))


def _expect_failures(cls: type, reason: str, names: list[str]) -> None:
    for name in names:
        setattr(cls, name, _expected_failure(name, reason, (AssertionError, openai.LengthFinishReasonError)))


class _Onboard(ChatModelIntegrationTests):
    base_url = ""
    served = ""

    @property
    def chat_model_class(self):
        return ChatOpenAI

    @property
    def chat_model_params(self):
        return {"model": self.served, "base_url": self.base_url, "api_key": "test", "max_tokens": 200,
                "temperature": 0, "max_retries": 0, "timeout": 300, "stream_usage": True}

    @property
    def has_tool_choice(self):
        return True

    @property
    def tool_choice_value(self):
        return "any"  # OpenAI's "required": a forced call, generated under the tools' schemas

    @property
    def supports_json_mode(self):
        return True

    @property
    def structured_output_kwargs(self):
        return {"method": "json_schema"}

    test_message_with_name = _expected_failure("test_message_with_name", NAME_REFUSED, openai.BadRequestError)



class TestTinyModel(_Onboard):
    @pytest.fixture(autouse=True, scope="class")
    def _server(self, merged_model, no_onboard_env_class):
        with serve_in_thread(create_app(ServeSettings(model=merged_model, rag_k=0, max_new_tokens=256))) as base:
            TestTinyModel.base_url, TestTinyModel.served = f"{base}/v1", merged_model.name
            yield


_expect_failures(TestTinyModel, TINY_CANNOT, ["test_tool_calling", "test_tool_calling_async",
                                               "test_bind_runnables_as_tools", "test_agent_loop",
                                               "test_unicode_tool_call_integration", *JSON_TESTS])


QWEN_CANNOT = ("the 0.5B model repeats itself inside a JSON string under greedy decoding until max_tokens, and does "
               "not answer from a tool's result in the agent loop")


@pytest.mark.slow
class TestQwen05B(_Onboard):
    @pytest.fixture(autouse=True, scope="class")
    def _server(self, no_onboard_env_class):
        if not (QWEN / "config.json").is_file():
            pytest.skip(f"no 0.5B model in {QWEN}: `onboard base fetch qwen2.5-coder-0.5b-instruct`")
        with serve_in_thread(create_app(ServeSettings(model=QWEN, rag_k=0, max_new_tokens=256, threads=2))) as base:
            TestQwen05B.base_url, TestQwen05B.served = f"{base}/v1", QWEN.name
            yield


_expect_failures(TestQwen05B, QWEN_CANNOT, ["test_agent_loop", *JSON_TESTS])
