"""Which OpenAI chat parameters this server honours, and the refusal, by name, of every other one.

A client that sets `stop`, `tools` or `response_format` and gets a 200 believes it was obeyed; so each
parameter the request declares (serving/protocol.py) is either honoured by the route and the engines or
refused here with a 400 whose `param` names it. Messages are brought to what every engine reads (role
and text): the `developer` role is the system's, content given as text parts is joined; what cannot be
rendered yet (images, tool-call history) is refused by name.
"""

from __future__ import annotations

from serving.errors import BadRequest, Unsupported
from serving.protocol import ChatCompletionRequest, ChatMessage

HONOURED = ("model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "seed",
            "stop", "stream", "stream_options", "user", "rag", "logprobs", "top_logprobs", "response_format",
            "tools", "tool_choice", "parallel_tool_calls")
"""Parameters the chat route and the engines obey (`user` is the caller's label, never used or logged)."""

_NOT_YET = {
    "functions": "function calling is not supported by this server",
    "function_call": "function calling is not supported by this server",
    "presence_penalty": "presence_penalty is not supported by this server",
    "frequency_penalty": "frequency_penalty is not supported by this server",
    "logit_bias": "logit_bias is not supported by this server",
    "store": "this server does not store completions",
    "metadata": "this server does not store completions, so it keeps no metadata",
    "modalities": "this server answers in text only",
    "audio": "this server answers in text only",
    "prediction": "predicted outputs are not supported by this server",
    "reasoning_effort": "this server's models take no reasoning effort",
    "service_tier": "this server has one service tier",
    "web_search_options": "this server does not search the web",
}


def _is_default(name: str, value) -> bool:
    """Whether `value` asks for nothing beyond what the server does anyway (a client library's default)."""
    if value is None or value is False or value == [] or value == {}:
        return True
    if name in ("presence_penalty", "frequency_penalty"):
        return value == 0
    if name == "modalities":
        return value == ["text"]
    if name == "service_tier":
        return value in ("auto", "default")
    return False


def check_request(req: ChatCompletionRequest) -> None:
    """Refuse, naming it, every parameter set to something this server would otherwise ignore.

    Raises:
        Unsupported: the parameter (`param`) and why, and what to do instead.
        BadRequest: max_tokens and max_completion_tokens disagree; n > 1 with temperature 0 (the same
            answer n times is never what a client means).
    """
    for name, why in _NOT_YET.items():
        value = getattr(req, name)
        if not _is_default(name, value):
            raise Unsupported(f"{name}: {why}; leave it out.", name)
    stop = [req.stop] if isinstance(req.stop, str) else req.stop or []
    if len(stop) > 4 or any(not s for s in stop):
        raise BadRequest("stop: up to 4 non-empty strings.", "stop")
    _check_response_format(req.response_format)
    _check_tools(req)
    if req.max_tokens and req.max_completion_tokens and req.max_tokens != req.max_completion_tokens:
        raise BadRequest("max_tokens and max_completion_tokens disagree; give one of them.", "max_completion_tokens")
    if req.n > 1 and req.temperature == 0:
        raise BadRequest(f"n: {req.n} greedy answers (temperature 0) would all be the same; set a temperature "
                         "above 0 to sample different ones, or n to 1.", "n")
    if req.stream_options is not None and req.stream_options.include_obfuscation:
        raise Unsupported("stream_options.include_obfuscation: this server does not pad its stream; leave it out.",
                          "stream_options.include_obfuscation")
    if req.top_logprobs is not None and not req.logprobs:
        raise BadRequest("top_logprobs: only allowed when logprobs is true.", "top_logprobs")
    if req.n > 1 and req.stream:
        raise Unsupported("n: streaming more than one choice is not supported by this server yet; stream with "
                          "n 1, or set stream false.", "n")


def _check_response_format(fmt: dict | None) -> None:
    """text, json_object, or json_schema with a name and an object `schema` (OpenAI's shape).

    Raises:
        BadRequest: another type, or a json_schema without its parts; `param` points at the part.
    """
    if fmt is None:
        return
    kind = fmt.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise BadRequest(f"response_format.type: {kind!r} is not one of 'text', 'json_object', 'json_schema'.",
                         "response_format.type")
    if kind != "json_schema":
        return
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise BadRequest("response_format.json_schema: give an object with a `name` and the `schema`.",
                         "response_format.json_schema")
    if not isinstance(spec.get("schema", {}), dict):
        raise BadRequest("response_format.json_schema.schema: must be a JSON schema object.",
                         "response_format.json_schema.schema")


def _check_tools(req: ChatCompletionRequest) -> None:
    """Function tools with names; tool_choice none/auto/required or one of them by name.

    Raises:
        BadRequest: a malformed tool, a tool_choice without tools or naming none of them, or a forced call
            together with a JSON response_format (both would shape the answer).
    """
    choice = req.tool_choice
    if not req.tools:
        if choice not in (None, "none"):
            raise BadRequest("tool_choice: only allowed when tools are given.", "tool_choice")
        return
    names = []
    for i, tool in enumerate(req.tools):
        fn = tool.get("function")
        if tool.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                or not fn["name"] or not isinstance(fn.get("parameters", {}), dict):
            raise BadRequest(f"tools[{i}]: give {{\"type\": \"function\", \"function\": {{\"name\": ..., "
                             "\"parameters\": {JSON schema}}}.", f"tools[{i}]")
        names.append(fn["name"])
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
        if name not in names:
            raise BadRequest(f"tool_choice: names no function in tools ({', '.join(names)}).", "tool_choice")
    elif choice not in (None, "none", "auto", "required"):
        raise BadRequest(f"tool_choice: {choice!r} is not none, auto, required or a function.", "tool_choice")
    forced = choice == "required" or isinstance(choice, dict)
    if forced and (req.response_format or {}).get("type") not in (None, "text"):
        raise BadRequest("response_format: cannot shape an answer whose tool call is forced (tool_choice); give "
                         "one of them.", "response_format")


def plain_messages(messages: list[ChatMessage]) -> list[dict]:
    """`messages` as every engine reads them: `role` (system, user, assistant, tool) and `content` text; an
    assistant's `tool_calls` and a tool result's `tool_call_id` kept (the engine's chat template renders them,
    or it refuses them by name).

    Raises:
        Unsupported: a part other than text, or a message's `name`; `param` points at it
            (messages[2].content[1].type).
        BadRequest: a message without content, a malformed tool call, a tool result without its call's id.
    """
    out = []
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        if m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": "" if m.content is None else _text(m, at),
                        "tool_calls": _calls(m.tool_calls, at)})
            continue
        if m.tool_calls or (m.tool_call_id and m.role != "tool"):
            field = "tool_calls" if m.tool_calls else "tool_call_id"
            raise BadRequest(f"{at}.{field}: only an assistant message calls tools, and only a tool message "
                             "answers one.", f"{at}.{field}")
        if m.role == "tool":
            if not m.tool_call_id:
                raise BadRequest(f"{at}.tool_call_id: a tool message names the call it answers.", f"{at}.tool_call_id")
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": _text(m, at)})
            continue
        if m.refusal is not None:
            raise Unsupported(f"{at}.refusal: refusals in the history are not rendered by this server; put the "
                              "text in content.", f"{at}.refusal")
        if m.name is not None:
            raise Unsupported(f"{at}.name: participant names are not rendered by this server's chat template; "
                              "leave name out, or put it in the content.", f"{at}.name")
        out.append({"role": "system" if m.role == "developer" else m.role, "content": _text(m, at)})
    return out


def _calls(calls: list[dict], at: str) -> list[dict]:
    for j, c in enumerate(calls):
        fn = c.get("function")
        if c.get("type", "function") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                or not isinstance(fn.get("arguments", ""), str):
            raise BadRequest(f"{at}.tool_calls[{j}]: give {{\"id\", \"type\": \"function\", \"function\": "
                             "{\"name\", \"arguments\": JSON text}}.", f"{at}.tool_calls[{j}]")
    return [{"id": c.get("id", ""), "type": "function",
             "function": {"name": c["function"]["name"], "arguments": c["function"].get("arguments", "{}")}}
            for c in calls]


def _text(m: ChatMessage, at: str) -> str:
    if m.content is None:
        raise BadRequest(f"{at}.content: a {m.role} message needs content.", f"{at}.content")
    if isinstance(m.content, str):
        return valid_unicode(m.content, f"{at}.content")
    texts = []
    for j, part in enumerate(m.content):
        if part.type != "text" or part.text is None:
            raise Unsupported(f"{at}.content[{j}].type: {part.type!r} parts are not supported by this server "
                              "(text only).", f"{at}.content[{j}].type")
        texts.append(valid_unicode(part.text, f"{at}.content[{j}].text"))
    return "\n".join(texts)  # as vLLM joins text parts


def valid_unicode(text: str, param: str) -> str:
    """`text`, if it is valid Unicode (JSON's "\\ud800" escapes give lone surrogates no tokenizer reads).

    Raises:
        BadRequest: naming `param` and the position of the first bad character.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadRequest(f"{param}: invalid Unicode at character {e.start} (a lone surrogate); send valid UTF-8 "
                         "text.", param) from None
    return text


def stop_strings(req: ChatCompletionRequest) -> tuple[str, ...]:
    """The request's stop strings (one string or a list), as the engines take them."""
    return (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
