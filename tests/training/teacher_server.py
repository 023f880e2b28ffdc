"""A scripted OpenAI-compatible chat server for the teacher tests: real HTTP, no model.

    python tests/training/teacher_server.py --port 8011 [--delay 0.2] [--fail-first 3 --fail-status 429]

It reads the `<context>` (and `<question>`) blocks of the teacher's prompts and answers from them:
- a questions prompt gets three questions built from the first words of the context's sentences (English
  as a JSON list after a preamble, Chinese as numbered lines under a header line, to exercise parsing);
- a paraphrase prompt (a `<question>` block and no context) gets two rewordings prefixed "Excuse me," /
  "One more thing," (打扰一下，/ 再问一下，), the question itself, a preamble line and, for a Chinese question,
  an English line, so that filtering is exercised;
- an answer prompt gets `##Reason ... ##begin_quote## <the sentence the question is about> ##end_quote##
  ##Answer: <that sentence>`, unless the context holds `ungrounded_marker` (an invented quote and answer)
  or `refuse_marker` (a refusal).
It can fail the first N requests with a status, be slow, demand an API key, and records every request and
the most requests it had in flight at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

_CJK = re.compile(r"[\u4e00-\u9fff]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


@dataclass
class Script:
    """How the server behaves, and what it saw."""

    delay_s: float = 0.0
    """Seconds each reply takes."""
    fail_first: int = 0
    """The first N requests fail with fail_status."""
    fail_status: int = 500
    ungrounded_marker: str = "UNGROUNDED"
    """Contexts holding it get an answer that is not in the context."""
    refuse_marker: str = "NOANSWER"
    """Contexts holding it get 'I cannot answer'."""
    api_key: str | None = None
    """When set, requests with another bearer token get 401."""
    requests: list[dict] = field(default_factory=list)
    """One record per HTTP request: kind ('questions', 'answer', 'paraphrase', 'other'), context, question, prompt, status."""
    in_flight: int = 0
    max_in_flight: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.max_in_flight = 0


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _block(prompt: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>\n?(.*?)\n?</{tag}>", prompt, re.S)
    return m.group(1).strip() if m else None


def _key(sentence: str, zh: bool) -> str:
    """The part of a sentence a question is built from (and found again by)."""
    return sentence[:6] if zh else " ".join(sentence.split()[:4]).rstrip(".,:;")


def questions_reply(context: str) -> str:
    zh = bool(_CJK.search(context))
    sents = _sentences(context)
    keys = [_key(sents[i % len(sents)], zh) for i in range(3)]
    if zh:
        return "以下是问题：\n" + "\n".join(f"{i}. 关于“{k}”，有什么规定？" for i, k in enumerate(keys, 1))
    qs = [f"What does the policy say about {k}?" for k in keys]
    return "Here are the questions:\n" + json.dumps(qs)


def paraphrase_reply(question: str) -> str:
    if _CJK.search(question):
        return f"好的：\n1. 打扰一下，{question}\n2. {question}\n3. 再问一下，{question}\n4. Excuse me, is that so?"
    low = question[:1].lower() + question[1:]
    return f"Sure, here they are:\n- Excuse me, {low}\n- {question}\n- One more thing, {low}"


def answer_reply(context: str, question: str, script: Script) -> str:
    zh = bool(_CJK.search(context))
    if script.refuse_marker in context:
        return "##Reason: 内容没有提到这一点。\n##Answer: 无法根据内容回答。" if zh else (
            "##Reason: The context is silent on this.\n##Answer: I cannot answer this from the context.")
    if script.ungrounded_marker in context:
        return ("##Reason: ##begin_quote## The moon is made of green cheese. ##end_quote##\n"
                "##Answer: Astronauts harvest moon cheese every Tuesday.")
    sents = _sentences(context)
    sentence = next((s for s in sents if _key(s, zh) in question), sents[0])
    lead, tail = ("内容写道", "因此可以回答。") if zh else ("The context says", "so that answers it.")
    return f"##Reason: {lead} ##begin_quote## {sentence} ##end_quote## {tail}\n##Answer: {sentence}"


def make_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "tests"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        context, question = _block(prompt, "context"), _block(prompt, "question")
        kind = ("paraphrase" if question is not None else "other") if context is None else \
            "answer" if question is not None else "questions"
        record = {"kind": kind, "context": context, "question": question, "prompt": prompt, "status": 200}
        script.requests.append(record)
        script.in_flight += 1
        script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            if script.delay_s:
                await asyncio.sleep(script.delay_s)
            if script.api_key and request.headers.get("authorization") != f"Bearer {script.api_key}":
                record["status"] = 401
                return JSONResponse({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                               "code": "invalid_api_key"}}, status_code=401)
            if len(script.requests) <= script.fail_first:
                record["status"] = script.fail_status
                return JSONResponse({"error": {"message": "scripted failure", "type": "server_error", "code": None}},
                                    status_code=script.fail_status, headers={"retry-after-ms": "10"})
            if kind == "questions":
                content = questions_reply(context)
            elif kind == "paraphrase":
                content = paraphrase_reply(question)
            elif kind == "answer":
                content = answer_reply(context, question, script)
            else:
                content = "Hello."
            return {
                "id": f"chatcmpl-{len(script.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(content),
                          "total_tokens": len(prompt) + len(content)},
            }
        finally:
            script.in_flight -= 1

    return app


class TeacherServer:
    """The scripted server on 127.0.0.1 in a background thread: `with TeacherServer() as s: s.url`."""

    def __init__(self, script: Script | None = None, port: int = 0):
        self.script = script or Script()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(make_app(self.script), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> TeacherServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted teacher server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--fail-status", type=int, default=500)
    args = ap.parse_args()
    script = Script(delay_s=args.delay, fail_first=args.fail_first, fail_status=args.fail_status)
    uvicorn.run(make_app(script), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
