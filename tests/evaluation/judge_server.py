"""A scripted OpenAI-compatible judge for the judge tests: real HTTP (uvicorn in a thread), no model.

    with JudgeServer(Script(reply_style="fence")) as s:
        judge(JudgeConfig(base_url=s.url, model="scripted"), items)

It reads the <reference>, <sources> and <answer> blocks of the judge prompt and scores the answer by rule:
- correctness: 1 + 4 x the share of the reference's key facts the answer states,
  so it follows the rule metric `facts` exactly (`reverse`: 6 minus that, so it runs against it);
- faithfulness: 5 when there are no sources or the answer's first word is in them, else 2;
- tone: 1 when the answer holds "whatever" (a sarcasm marker), else 5.
The reply is the bare JSON, in a ```json fence, or after a preamble (`reply_style`, or "cycle" through
them). An answer holding `garbage_marker` gets prose without JSON, one holding `range_marker` a
correctness of 7. It can fail the first N requests with a status, demand an API key, be slow, and records
every request and the most it had in flight at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from evaluation.metrics.facts import fact_recall, key_facts
from tests.serving.servers import serve_in_thread

STYLES = ("bare", "fence", "prose")


@dataclass
class Script:
    """How the judge behaves, and what it saw."""

    reply_style: str = "bare"
    """'bare', 'fence', 'prose' or 'cycle' (one after another, by request)."""
    reverse: bool = False
    """Score correctness against the facts instead of with them."""
    garbage_marker: str = "GARBAGE"
    range_marker: str = "OUTOFRANGE"
    fail_first: int = 0
    """The first N requests fail with fail_status."""
    fail_status: int = 500
    api_key: str | None = None
    """When set, requests with another bearer token get 401 (with a message that echoes the token)."""
    delay_s: float = 0.0
    requests: list[dict] = field(default_factory=list)
    """One record per HTTP request: question, answer, sources, prompt, status, authorization."""
    in_flight: int = 0
    max_in_flight: int = 0


def block(prompt: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", prompt, re.S)
    return m.group(1) if m else None


def scores_for(reference: str, sources: str, answer: str, reverse: bool) -> dict:
    facts = key_facts(reference)
    recall = fact_recall(answer, facts) if facts else 0.0
    correctness = 1 + round(4 * recall)
    words = answer.split()
    faithful = sources == "(none)" or (bool(words) and words[0].lower() in sources.lower())
    return {"correctness": 6 - correctness if reverse else correctness, "faithfulness": 5 if faithful else 2,
            "tone": 1 if "whatever" in answer.lower() else 5, "reason": f"{len(facts)} key facts, recall {recall:.2f}"}


def reply_text(prompt: str, n: int, script: Script) -> str:
    reference, sources, answer = block(prompt, "reference"), block(prompt, "sources"), block(prompt, "answer")
    if reference is None or sources is None or answer is None:
        return "I see no answer to grade."
    if script.garbage_marker in answer:
        return "This answer looks fine to me, I would give it a good mark overall."
    obj = scores_for(reference, sources, answer, script.reverse)
    if script.range_marker in answer:
        obj["correctness"] = 7
    style = STYLES[n % len(STYLES)] if script.reply_style == "cycle" else script.reply_style
    text = json.dumps(obj, ensure_ascii=False)
    if style == "fence":
        return f"```json\n{text}\n```"
    if style == "prose":
        return f"Let me grade this. The rubric says {{scores}} must be whole numbers.\nMy grades:\n{text}\nDone."
    return text


def make_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        auth = request.headers.get("authorization")
        record = {"question": block(prompt, "question"), "answer": block(prompt, "answer"),
                  "sources": block(prompt, "sources"), "prompt": prompt, "status": 200, "authorization": auth,
                  "temperature": body.get("temperature")}
        script.requests.append(record)
        script.in_flight += 1
        script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            if script.delay_s:
                await asyncio.sleep(script.delay_s)
            if script.api_key and auth != f"Bearer {script.api_key}":
                record["status"] = 401
                return JSONResponse({"error": {"message": f"Incorrect API key provided: {auth}.",
                                               "code": "invalid_api_key"}}, status_code=401)
            if len(script.requests) <= script.fail_first:
                record["status"] = script.fail_status
                return JSONResponse({"error": {"message": "scripted failure"}}, status_code=script.fail_status,
                                    headers={"retry-after-ms": "10"})
            content = reply_text(prompt, len(script.requests), script)
            return {"id": f"chatcmpl-{len(script.requests)}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", "scripted"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}]}
        finally:
            script.in_flight -= 1

    return app


class JudgeServer:
    """The scripted judge on 127.0.0.1 in a background thread: `with JudgeServer() as s: s.url`."""

    def __init__(self, script: Script | None = None):
        self.script = script or Script()
        self._served = serve_in_thread(make_app(self.script))

    def __enter__(self) -> JudgeServer:
        self.url = self._served.__enter__() + "/v1"
        return self

    def __exit__(self, *exc) -> None:
        self._served.__exit__(*exc)
