"""Every OpenAI chat parameter is honoured or refused by name (issue 15): a real uvicorn server on the
tiny model, called with the official openai client and with raw HTTP where the client hides the JSON."""

import json
import math

import httpx
import pytest
from openai import BadRequestError, OpenAI

from serving.app import create_app
from serving.settings import ServeSettings
from tests.serving.servers import read_stream, serve_in_thread

MSGS = [{"role": "user", "content": "How long is the warranty on lamps?"}]
TOOLS = [{"type": "function", "function": {"name": "order_status", "description": "Where an order is", "parameters": {
    "type": "object", "properties": {"order": {"type": "integer", "minimum": 1, "maximum": 9999}, "express": {"type": "boolean"}},
    "required": ["order", "express"], "additionalProperties": False}}}]


@pytest.fixture(scope="module")
def server(merged_model, workspace):
    app = create_app(ServeSettings(model=merged_model, workspace=workspace, max_new_tokens=12))
    with serve_in_thread(app) as base:
        yield base


@pytest.fixture()
def client(server):
    return OpenAI(base_url=f"{server}/v1", api_key="test", max_retries=0)


def _refused(client, param: str, **kwargs) -> dict:
    with pytest.raises(BadRequestError) as e:
        client.chat.completions.create(model="merged", **{"messages": MSGS, **kwargs})
    body = e.value.body
    assert body["param"] == param and body["type"] == "invalid_request_error", body
    assert "code" in body and body["message"], body
    return body


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),  # OpenAI's limit is 4
    ({"stop": [""]}, "stop"),
    ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),  # OpenAI's limit is 20
    ({"tools": [{"type": "function", "function": {"parameters": {"type": "object"}}}]}, "tools[0]"),  # no name
    ({"tool_choice": "required"}, "tool_choice"),  # without tools
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
     "response_format.json_schema"),  # no name
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
     "response_format.json_schema.schema"),  # cannot be compiled
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": -0.5}, "frequency_penalty"),
    ({"logit_bias": {"15": 5}}, "logit_bias"),
    ({"store": True}, "store"),
    ({"n": 2}, "n"),  # greedy: n copies of one answer
    ({"n": 2, "temperature": 1.0, "stream": True}, "n"),
    ({"max_tokens": 4, "max_completion_tokens": 5}, "max_completion_tokens"),
    ({"max_tokens": 13}, "max_tokens"),  # over the server's --max-new-tokens (12 here): refused, not cut
    ({"max_completion_tokens": 100}, "max_completion_tokens"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),  # without stream
    ({"stream": True, "stream_options": {"include_obfuscation": True}}, "stream_options.include_obfuscation"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "refusal": "no"},
                   {"role": "user", "content": "why?"}]}, "messages[1].refusal"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [*MSGS, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "42"}]}, "messages[1].tool_calls[0]"),
    ({"messages": [*MSGS, {"role": "tool", "content": "42"}]}, "messages[1].tool_call_id"),
    ({"messages": [{"role": "user", "content": "hi", "name": "ann"}]}, "messages[0].name"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [*MSGS, {"role": "assistant", "content": "Two years."}]}, "messages"),
])
def test_what_is_not_honoured_is_refused_by_name(client, kwargs, param):
    _refused(client, param, **kwargs)


def test_unknown_and_missing_arguments_are_named_as_openai_names_them(server, client):
    body = _refused(client, "best_of", extra_body={"best_of": 3})
    assert body["message"] == "Unrecognized request argument supplied: best_of"
    r = httpx.post(f"{server}/v1/chat/completions", json={"messages": MSGS})
    err = r.json()["error"]
    assert r.status_code == 400 and err["param"] == "model" and err["code"] == "missing_required_parameter"


def test_responses_carry_every_field_openai_clients_read(server):
    r = httpx.post(f"{server}/v1/chat/completions", json={"model": "merged", "messages": MSGS}).json()
    choice = r["choices"][0]
    assert "logprobs" in choice and choice["logprobs"] is None
    assert "refusal" in choice["message"] and choice["message"]["refusal"] is None


def test_logprobs_are_the_models_own_streamed_or_not_and_end_where_the_answer_ends(server, client):
    """Greedy decoding picks the most likely token, so each chosen token is its position's top_logprobs[0];
    the tokens' bytes add up to the answer, cut at a stop string too; a stream carries the same tokens."""
    ask = {"model": "merged", "messages": MSGS, "max_tokens": 12, "extra_body": {"rag": False}}
    r = client.chat.completions.create(**ask, logprobs=True, top_logprobs=3)
    text, tokens = r.choices[0].message.content, r.choices[0].logprobs.content
    assert tokens and b"".join(bytes(t.bytes) for t in tokens).decode() == text
    for t in tokens:
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert [x.logprob for x in t.top_logprobs] == sorted((x.logprob for x in t.top_logprobs), reverse=True)
        assert t.top_logprobs[0].token == t.token and abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5
        assert sum(math.exp(x.logprob) for x in t.top_logprobs) <= 1 + 1e-5
    assert client.chat.completions.create(**ask).choices[0].logprobs is None  # not asked: null

    body = {"model": "merged", "messages": MSGS, "max_tokens": 12, "rag": False, "logprobs": True, "stream": True}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body) as s:
        data = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    streamed = [t for d in data for c in d["choices"] if c["logprobs"] for t in c["logprobs"]["content"]]
    assert [t["token"] for t in streamed] == [t.token for t in tokens]
    assert all(t["top_logprobs"] == [] for t in streamed)

    stop = text[len(text) // 2:][:3]  # a stop string from the middle of the answer
    cut = client.chat.completions.create(**ask, logprobs=True, stop=[stop])
    kept = b"".join(bytes(t.bytes) for t in cut.choices[0].logprobs.content).decode()
    assert cut.choices[0].message.content == text[:text.index(stop)] and text[:text.index(stop)].startswith(kept)
    assert len(kept.encode()) > len(cut.choices[0].message.content.encode()) - 8  # at most the straddling token


SCHEMA = {"type": "object", "properties": {"refund": {"type": "boolean"}, "language": {"enum": ["en", "zh"]}},
          "required": ["refund", "language"], "additionalProperties": False}
"""Its properties out of alphabetical order: the answer writes them in the schema's order, as OpenAI does."""


@pytest.fixture(scope="module")
def roomy(merged_model):
    """A client of a server that answers with up to 160 tokens (the tiny tokenizer spends about a token per
    character or two of JSON)."""
    with serve_in_thread(create_app(ServeSettings(model=merged_model, rag_k=0, max_new_tokens=160))) as base:
        yield OpenAI(base_url=f"{base}/v1", api_key="test", max_retries=0)


def test_json_schema_is_enforced_streamed_or_not(roomy):
    """The tiny model never writes JSON of itself; under response_format it writes JSON matching the schema
    (constrained decoding), streamed or not, the same greedy answer."""
    client = roomy
    ask = {"model": "merged", "messages": MSGS, "max_tokens": 64}
    free = client.chat.completions.create(**ask).choices[0].message.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(free)
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    r = client.chat.completions.create(**ask, response_format=fmt)
    got = json.loads(r.choices[0].message.content)
    assert list(got) == ["refund", "language"] and got["language"] in ("en", "zh") and isinstance(got["refund"], bool)
    assert r.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(**ask, response_format=fmt, stream=True)
    assert read_stream(stream)[0] == r.choices[0].message.content
    obj = client.chat.completions.create(**ask, response_format={"type": "json_object"})
    text = obj.choices[0].message.content
    assert text.startswith("{") and (obj.choices[0].finish_reason == "length" or isinstance(json.loads(text), dict))


def test_tools_a_forced_call_its_result_and_the_answer_after_it(roomy, server):
    """The tiny model's template renders tools (Qwen2.5's layout): a named tool_choice makes it call that
    function with arguments valid for its schema (finish_reason tool_calls, content null), streamed the same;
    the call and its result then go back as history, rendered into the prompt, and the model answers."""
    client = roomy
    forced = {"type": "function", "function": {"name": "order_status"}}
    ask = {"model": "merged", "messages": MSGS, "max_tokens": 160, "tools": TOOLS}
    r = client.chat.completions.create(**ask, tool_choice=forced)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None, choice
    (call,) = choice.message.tool_calls
    args = json.loads(call.function.arguments)
    assert call.function.name == "order_status" and call.id.startswith("call_") and call.type == "function"
    assert set(args) == {"order", "express"} and 1 <= args["order"] <= 9999 and isinstance(args["express"], bool)

    stream = client.chat.completions.create(**ask, tool_choice=forced, stream=True)
    chunks = [c for c in stream if c.choices]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.function.name, tc.function.arguments) for tc in calls] == \
        [(0, "order_status", call.function.arguments)] and chunks[-1].choices[0].finish_reason == "tool_calls"

    history = [*MSGS, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
               {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'}]
    after = client.chat.completions.create(model="merged", messages=history, max_tokens=8, tools=TOOLS,
                                           tool_choice="none")
    plain = client.chat.completions.create(model="merged", messages=MSGS, max_tokens=8)
    assert after.choices[0].finish_reason in ("stop", "length") and after.choices[0].message.tool_calls is None
    assert after.usage.prompt_tokens > plain.usage.prompt_tokens + 20  # the call and its result are in the prompt
    auto = client.chat.completions.create(**ask)  # auto: the tiny model writes text, and text it stays
    assert auto.choices[0].message.content and auto.choices[0].finish_reason in ("stop", "length")
    # streamed, that text goes out as it is written (not one piece at the end), and adds up to the same answer
    chunks = [c for c in client.chat.completions.create(**ask, stream=True) if c.choices]
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) > 3 and "".join(pieces) == auto.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == auto.choices[0].finish_reason


def test_a_template_without_tools_refuses_them_by_name(merged_model):
    """tools, or tool turns in the history, for a model whose chat template renders none (plain ChatML here):
    a 400 naming them, never a prompt that silently leaves them out."""
    from serving.engines.hf import TransformersEngine
    from serving.tools import layout_of

    engine = TransformersEngine(merged_model)
    engine.tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    engine.tool_layout = layout_of(engine.tokenizer.chat_template)
    assert engine.tool_layout is None
    with serve_in_thread(create_app(ServeSettings(model=merged_model, rag_k=0, max_new_tokens=12),
                                    engine=engine)) as base:
        plain = OpenAI(base_url=f"{base}/v1", api_key="test", max_retries=0)
        assert _refused(plain, "tools", tools=TOOLS)["message"].startswith("tools: this model's chat template")
        history = [*MSGS, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "order_status", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}]
        _refused(plain, "messages[1]", messages=history)
        assert plain.chat.completions.create(model="merged", messages=MSGS).choices[0].message.content is not None


def test_max_completion_tokens_is_honoured(client):
    r = client.chat.completions.create(model="merged", messages=MSGS, max_completion_tokens=2)
    assert r.usage.completion_tokens == 2 and r.choices[0].finish_reason == "length"


def test_developer_role_and_text_parts_are_the_system_role_and_a_string(client):
    def answer(messages):
        r = client.chat.completions.create(model="merged", messages=messages, extra_body={"rag": False},
                                           max_tokens=8)
        return r.choices[0].message.content, r.usage.prompt_tokens

    plain = answer([{"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": "Where is the shop?\nIn which town?"}])
    parts = answer([{"role": "developer", "content": [{"type": "text", "text": "Answer briefly."}]},
                    {"role": "user", "content": [{"type": "text", "text": "Where is the shop?"},
                                                 {"type": "text", "text": "In which town?"}]}])
    assert parts == plain  # the same prompt, token for token, so the same greedy answer
    other = answer([{"role": "system", "content": "Answer at length, in French, with examples."},
                    {"role": "user", "content": "Where is the shop?\nIn which town?"}])
    assert other[1] > plain[1], "the system message reaches the model: a longer one makes a longer prompt"


def test_a_seed_makes_sampling_repeatable_and_n_samples_several(client):
    def sample(seed, n=1):
        r = client.chat.completions.create(model="merged", messages=MSGS, temperature=1.0, seed=seed, n=n,
                                           max_tokens=12, extra_body={"rag": False})
        return [c.message.content for c in r.choices], r

    a, first = sample(7)
    assert sample(7)[0] == a
    assert any(sample(s)[0] != a for s in (8, 9, 10)), "other seeds sample other answers"
    both, r = sample(7, n=2)
    (b, second) = sample(8)
    assert [c.index for c in r.choices] == [0, 1] and both == [a[0], b[0]], "choice i samples with seed + i"
    assert r.usage.completion_tokens == first.usage.completion_tokens + second.usage.completion_tokens
    assert r.usage.prompt_tokens == first.usage.prompt_tokens


def test_stream_usage_and_finish_reason_on_every_chunk(server, client):
    full = client.chat.completions.create(model="merged", messages=MSGS)
    body = {"model": "merged", "messages": MSGS, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body) as r:
        data = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    with_choices = [d for d in data if d["choices"]]
    assert all("finish_reason" in d["choices"][0] for d in with_choices)
    assert [d["choices"][0]["finish_reason"] for d in with_choices][:-1] == [None] * (len(with_choices) - 1)
    assert with_choices[-1]["choices"][0]["finish_reason"] == full.choices[0].finish_reason
    last = data[-1]
    assert last["choices"] == [] and last["usage"] == full.usage.model_dump(exclude_none=True)
    stream = client.chat.completions.create(model="merged", messages=MSGS, stream=True,
                                            stream_options={"include_usage": True})
    usage = [c.usage for c in stream if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == full.usage.completion_tokens
    without = client.chat.completions.create(model="merged", messages=MSGS, stream=True)
    assert all(c.usage is None for c in without)


def test_embeddings_read_token_arrays_and_refuse_dimensions_they_cannot_honour(server, client, embedder):
    import numpy as np

    text = "How long is the warranty on lamps?"
    ids = embedder.tokenizer(text, add_special_tokens=False)["input_ids"]
    by_text = client.embeddings.create(model="all-MiniLM-L6-v2", input=[text]).data[0].embedding
    by_ids = client.embeddings.create(model="all-MiniLM-L6-v2", input=[ids, ids[:3]])
    assert np.allclose(by_ids.data[0].embedding, by_text, atol=1e-5)
    assert by_ids.usage.prompt_tokens == len(ids) + 3
    one = client.embeddings.create(model="all-MiniLM-L6-v2", input=ids, dimensions=384)  # one array; its own size
    assert np.allclose(one.data[0].embedding, by_text, atol=1e-5)
    for kwargs, param in (({"input": text, "dimensions": 256}, "dimensions"), ({"input": [[10**9]]}, "input"),
                          ({"input": []}, "input")):
        with pytest.raises(BadRequestError) as e:
            client.embeddings.create(model="all-MiniLM-L6-v2", **kwargs)
        assert e.value.body["param"] == param, e.value.body
    r = httpx.post(f"{server}/v1/embeddings", json={"input": "hi"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_every_listed_model_can_be_retrieved(client):
    from openai import NotFoundError

    listed = [m.id for m in client.models.list().data]
    assert listed == ["merged", "all-MiniLM-L6-v2"]
    assert [client.models.retrieve(m).id for m in listed] == listed
    with pytest.raises(NotFoundError) as e:
        client.models.retrieve("gpt-9")
    assert e.value.body["param"] == "model" and e.value.body["code"] == "model_not_found"


def test_stop_helpers_cut_at_the_first_stop_and_hold_back_a_possible_start():
    from serving.engines.base import cut_at_stop, held_back

    assert cut_at_stop("Two years. Thanks", ("Thanks", ".")) == ("Two years", True)
    assert cut_at_stop("Two years", ("END",)) == ("Two years", False)
    assert held_back("Two years. Th", ("Thanks",)) == 2 and held_back("Two years", ("Thanks",)) == 0
    assert held_back("ab", ("abc", "bx")) == 2  # the longest possible start counts
    assert held_back("退款需要三", ("三天", "。")) == 1


def test_stop_strings_cut_the_answer_streamed_or_not(client):
    def ask(**kw):
        return client.chat.completions.create(model="merged", messages=MSGS, max_tokens=12, **kw)

    plain = ask().choices[0]
    full = plain.message.content
    assert len(full) >= 4, full
    stop = full[2:4]
    want = full[: full.index(stop)]
    r = ask(stop=["never generated", stop])
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == (want, "stop")
    assert read_stream(ask(stop=["never generated", stop], stream=True)) == (want, "stop")
    kept = ask(stop="never generated").choices[0]  # a stop string that never comes changes nothing
    assert (kept.message.content, kept.finish_reason) == (full, plain.finish_reason)


def test_invalid_unicode_is_a_400_naming_where(server):
    chat = httpx.post(f"{server}/v1/chat/completions", content=b'{"model": "merged", "messages": [{"role": "user", '
                      b'"content": "hi \\ud800"}]}', headers={"content-type": "application/json"})
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "messages[0].content", chat.text
    emb = httpx.post(f"{server}/v1/embeddings", content=b'{"model": "all-MiniLM-L6-v2", "input": ["ok", "\\ud800"]}',
                     headers={"content-type": "application/json"})
    assert emb.status_code == 400 and emb.json()["error"]["param"] == "input[1]", emb.text

