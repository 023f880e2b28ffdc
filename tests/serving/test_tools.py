"""Reading tool calls back from what a model wrote, in the two layouts chat templates use (serving/tools.py)."""

import asyncio
import json

from serving.engines.base import Delta
from serving.tools import CallWatch, forced_call, history_for_template, layout_of, parse, stream_calls
from training.chat_template import CHATML_TEMPLATE


def test_the_layout_comes_from_the_template():
    assert layout_of(CHATML_TEMPLATE) == "hermes"
    assert layout_of("{% if tools %}{{ '<|python_tag|>' }}{% endif %}") == "llama3"
    assert layout_of("{{ messages }}") is None and layout_of(None) is None


def test_hermes_calls_with_text_before_them():
    text = ('Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "巴黎"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')
    content, calls = parse(text, "hermes")
    assert content == "Let me look.\n" and [c.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].arguments) == {"city": "巴黎"} and calls[0].id != calls[1].id
    assert calls[0].openai()["function"] == {"name": "get_weather", "arguments": '{"city": "巴黎"}'}


def test_what_only_looks_like_a_call_stays_text():
    for text in ["no tools here", '<tool_call>\n{"name": "f", "arguments": {\n</tool_call>', "<tool_call>\n[1, 2]"]:
        assert parse(text, "hermes") == (text, [])
    assert parse("The weather is fine.", "llama3") == ("The weather is fine.", [])
    assert parse('{"city": "Paris"}', "llama3") == ('{"city": "Paris"}', [])  # JSON, but not a call


def test_a_call_cut_by_max_tokens_before_its_closing_tag_is_still_read():
    content, calls = parse('<tool_call>\n{"name": "f", "arguments": {"x": 1}}', "hermes")
    assert content is None and calls[0].name == "f" and json.loads(calls[0].arguments) == {"x": 1}


def test_llama3_json_calls_one_or_several():
    content, calls = parse('<|python_tag|>{"name": "f", "parameters": {"a": 1}}; {"name": "g", "parameters": {}}',
                           "llama3")
    assert content is None and [(c.name, json.loads(c.arguments)) for c in calls] == [("f", {"a": 1}), ("g", {})]


def test_a_forced_call_begins_the_answer_and_follows_the_functions_schema():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "a": {"type": "integer"}}}}}, {"type": "function", "function": {"name": "g"}}]
    prefix, schema = forced_call("hermes", tools, "f")
    assert prefix == "<tool_call>\n" and schema["properties"]["name"] == {"const": "f"}
    assert schema["properties"]["arguments"]["properties"] == {"a": {"type": "integer"}}
    _, either = forced_call("llama3", tools, None)
    assert [v["properties"]["name"]["const"] for v in either["anyOf"]] == ["f", "g"]
    assert "parameters" in either["anyOf"][1]["required"]


def test_history_arguments_become_objects_for_the_template():
    msgs = [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}]
    assert history_for_template(msgs)[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    assert msgs[0]["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'  # the caller's copy is left alone


def _streamed(text: str, layout: str, step: int = 1) -> tuple[list[str], list, str]:
    """`text` streamed `step` characters at a time through stream_calls: the content pieces, the calls, and
    the last delta's finish reason."""
    async def pieces():
        for i in range(0, len(text), step):
            yield Delta(text[i:i + step])
        yield Delta("", "stop", 10, 5)

    async def read():
        return [d async for d in stream_calls(pieces(), layout)]

    deltas = asyncio.run(read())
    return [d.text for d in deltas if d.text], deltas[-1].tool_calls or [], deltas[-1].finish_reason


def test_streamed_content_goes_out_as_written_and_calls_whole_at_the_end():
    text = ('Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "巴黎"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')
    pieces, calls, finish = _streamed(text, "hermes")
    assert "".join(pieces) == "Let me look.\n" and len(pieces) > 3  # streamed, not one lump; the tag never shows
    assert finish == "tool_calls" and [(c.name, json.loads(c.arguments)) for c in calls] == \
        [("get_weather", {"city": "巴黎"}), ("get_time", {})]
    watch = CallWatch("hermes")  # what could begin the tag is held until it is known not to
    assert watch.feed("a <tool") == "a " and watch.feed("box> b") == "<toolbox> b"


def test_a_streamed_answer_without_a_valid_call_is_all_content():
    for text, layout in [("No tool needed: 退款 3 天到账。", "hermes"), ("The weather is fine.", "llama3"),
                         ('Look: <tool_call>\n{"name": "f", "arguments": {\n</tool_call>', "hermes"),
                         ('{"city": "Paris"}', "llama3")]:
        pieces, calls, finish = _streamed(text, layout, step=3)
        assert "".join(pieces) == text and calls == [] and finish == "stop", text


def test_a_streamed_llama3_answer_that_opens_a_call_is_held_whole():
    pieces, calls, finish = _streamed('<|python_tag|>{"name": "f", "parameters": {"a": 1}}', "llama3")
    assert pieces == [] and finish == "tool_calls" and json.loads(calls[0].arguments) == {"a": 1}
