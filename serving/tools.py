"""Tool calling through a model's own chat template: which layout the template uses, how a model's output is
read back as OpenAI `tool_calls`, and the grammar that makes a model call a tool when `tool_choice` says it
must.

Two layouts, as vLLM's `hermes` and `llama3_json` parsers read them:
- hermes (Qwen2.5, Hermes, Onboard's own ChatML template): `<tool_call>\\n{"name": ..., "arguments": {...}}\\n
  </tool_call>`, one block per call, text before the first block is the message's content;
- llama3 (Llama 3.1+ JSON tool calling): the whole answer is `{"name": ..., "parameters": {...}}` (optionally
  after `<|python_tag|>`), several calls separated by `;`.
A template that mentions neither cannot render tools: the request is refused by name.
"""

from __future__ import annotations

import json
import re
import uuid
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal

from serving.engines.base import Delta, held_back

Layout = Literal["hermes", "llama3"]

_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass
class ToolCall:
    name: str
    arguments: str
    """JSON text, as OpenAI sends it."""
    id: str = ""

    def __post_init__(self):
        self.id = self.id or f"call_{uuid.uuid4().hex[:24]}"

    def openai(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def layout_of(chat_template: str | None) -> Layout | None:
    """The tool-call layout `chat_template` renders, or None when it renders no tools."""
    if not chat_template or "tools" not in chat_template:
        return None
    if "<tool_call>" in chat_template:
        return "hermes"
    if "<|python_tag|>" in chat_template or '"parameters"' in chat_template:
        return "llama3"
    return None


def parse(text: str, layout: Layout) -> tuple[str | None, list[ToolCall]]:
    """The message content and the tool calls in a model's answer; (text, []) when it called none (text that
    only looks like a call, e.g. invalid JSON, stays text)."""
    if layout == "hermes":
        if "<tool_call>" not in text:
            return text, []
        calls = []
        for block in _HERMES.findall(text):
            call = _call(block, "arguments")
            if call is None:
                return text, []
            calls.append(call)
        content = text[: text.index("<tool_call>")]  # as written, as vLLM's hermes parser keeps it
        return content or None, calls
    body = text.strip().removeprefix("<|python_tag|>").strip()
    if not body.startswith("{"):
        return text, []
    calls = [_call(part, "parameters") for part in _split_json_objects(body)]
    if not calls or any(c is None for c in calls):
        return text, []
    return None, calls


def _call(block: str, args_key: str) -> ToolCall | None:
    try:
        obj = json.loads(block)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get(args_key, obj.get("arguments", {}))
    return ToolCall(obj["name"], args if isinstance(args, str) else json.dumps(args, ensure_ascii=False))


def _split_json_objects(body: str) -> list[str]:
    """`{...}; {...}` into its objects (a JSON decoder reading one after another)."""
    out, dec, i = [], json.JSONDecoder(), 0
    while i < len(body):
        try:
            _, end = dec.raw_decode(body, i)
        except json.JSONDecodeError:
            return [body]
        out.append(body[i:end])
        i = end
        while i < len(body) and body[i] in " \n\t;":
            i += 1
    return out


def forced_call(layout: Layout, tools: list[dict], name: str | None) -> tuple[str, dict]:
    """For tool_choice "required" (`name` None: any of `tools`) or a named function: the text the answer is
    made to begin with, and the JSON schema of the call that follows it (the function's name, and its
    `parameters` as the arguments)."""
    functions = [t["function"] for t in tools if name is None or t["function"]["name"] == name]
    args_key = "arguments" if layout == "hermes" else "parameters"
    variants = [{"type": "object", "properties": {
        "name": {"const": f["name"]}, args_key: f.get("parameters") or {"type": "object"}},
        "required": ["name", args_key], "additionalProperties": False} for f in functions]
    schema = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return ("<tool_call>\n" if layout == "hermes" else ""), schema


def history_for_template(messages: list[dict]) -> list[dict]:
    """OpenAI messages as chat templates read them: an assistant's tool-call arguments as objects (OpenAI
    sends JSON text; templates write `arguments | tojson`)."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c["function"])
                if isinstance(fn.get("arguments"), str):
                    try:
                        fn["arguments"] = json.loads(fn["arguments"] or "{}")
                    except json.JSONDecodeError:
                        pass  # the template writes what was sent
                calls.append({**c, "function": fn})
            m = {**m, "tool_calls": calls}
        out.append(m)
    return out


class CallWatch:
    """An answer's text as it streams, read for tool calls: text that is plainly the message's content goes
    out at once; from where a call begins (hermes: `<tool_call>`; llama3: an answer that opens with `{` or
    `<|python_tag|>`) the rest is held, and read with `parse` when the answer ends, so the stream's content
    and calls are the ones the whole answer gives. What could be the start of a call's tag is held until the
    next piece shows what it is."""

    def __init__(self, layout: Layout):
        self.layout, self.text, self.sent, self.calling = layout, "", 0, False

    def feed(self, piece: str) -> str:
        """The content to send now, given the next piece of the answer."""
        self.text += piece
        if self.calling:
            return ""
        if self.layout == "hermes":
            at = self.text.find("<tool_call>")
            self.calling = at >= 0
            ready = self.text[:at] if self.calling else self.text[: len(self.text) - held_back(self.text, ("<tool_call>",))]
        else:
            opening = self.text.lstrip()
            if not opening or "<|python_tag|>".startswith(opening):
                return ""
            self.calling = opening.startswith(("{", "<|python_tag|>"))
            ready = "" if self.calling else self.text
        return self._send(ready)

    def end(self) -> tuple[str, list[ToolCall]]:
        """The rest of the content, and the calls, once the whole answer is in."""
        _, calls = parse(self.text, self.layout)
        if calls:
            return "", calls
        return self._send(self.text), []

    def _send(self, upto: str) -> str:
        piece = upto[self.sent:] if len(upto) > self.sent else ""
        self.sent += len(piece)
        return piece


async def stream_calls(deltas, layout: Layout):
    """A stream of an answer's text (serving.engines.base.Delta) as content deltas and, on the last one, the
    tool calls the answer made (finish_reason tool_calls): content is streamed as it is written, a call is
    sent whole once the answer has ended (as `parse` reads the whole answer)."""
    watch = CallWatch(layout)
    async with aclosing(deltas):
        async for d in deltas:
            if d.finish_reason is None:
                if text := watch.feed(d.text):
                    yield Delta(text)
                continue
            text = watch.feed(d.text)
            rest, calls = watch.end()
            if text + rest:
                yield Delta(text + rest)
            yield Delta("", "tool_calls" if calls else d.finish_reason, d.prompt_tokens, d.completion_tokens,
                        tool_calls=calls or None)
