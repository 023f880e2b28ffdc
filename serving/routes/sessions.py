"""POST /chat: a customer's conversation, remembered by the server; POST /feedback: thumbs and corrections on
its answers, appended to the file `onboard data build --kind dpo` turns into preference pairs.

A follow-up ("and in China?", "那退货呢？") is retrieved for together with the customer's previous question, so
it finds what the conversation is about; the prompt holds the conversation's last `history_turns` messages
(fewer when the prompt would not fit the model's context). Each reply says whether a person should take over
(serving/handoff.py). With `stream: true` the reply comes as server-sent events (the chat page's way): `start`
(session, response id, sources), `delta` pieces, `end` (the whole ChatReply); an answer is kept, and can be
given feedback, once it has ended: a customer who leaves mid-answer stops the generation and leaves nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from rag import build_rag_messages
from rag.prompt import Prompts, detect_language
from rag.retrieval import Hit
from serving.conformance import valid_unicode
from serving.deps import EngineDep, PromptsDep, RagKDep, RetrieverDep, SettingsDep
from serving.engines.base import Delta, Engine, SamplingParams
from serving.errors import ChatOff, ContextTooLong, NotFound
from serving.handoff import ASK_FOR_PERSON, handoff_reason, min_cosine_for
from serving.metrics import observe
from serving.openapi import errors, sse
from serving.protocol import (
    ChatReply,
    ChatRequest,
    FeedbackReply,
    FeedbackRequest,
    Handoff,
    Source,
    Usage,
)
from serving.routes.chat import spent, too_slow, within
from serving.sessions import ChatStore, Served, add_feedback
from serving.settings import ServeSettings

log = logging.getLogger(__name__)
router = APIRouter(tags=["customer chat"])

_CJK = re.compile(r"[\u3400-\u9fff]")


async def get_chat_store(request: Request) -> ChatStore:
    store = getattr(request.app.state, "chat", None)
    if store is None:
        raise ChatOff("this server keeps no conversations: serve with a workspace (--workspace), or set conversations_file "
                      "(env ONBOARD_CONVERSATIONS_FILE).")
    return store


ChatStoreDep = Annotated[ChatStore, Depends(get_chat_store)]


def retrieval_query(message: str, history: list[dict]) -> str:
    """What to retrieve for: a short follow-up together with the customer's previous question."""
    before = next((m["content"] for m in reversed(history) if m["role"] == "user"), None)
    short = len(_CJK.findall(message)) <= 12 if _CJK.search(message) else len(message.split()) <= 6
    return f"{before} {message}" if before and short else message


@router.post("/chat", response_model=ChatReply,
             responses={**sse("with stream true: `start` {session_id, response_id, sources}, `delta` {text} as the "
                              "answer is written, then `end` (the ChatReply), or `error` {error}"),
                        **errors(400, 404, 413, 503, 504)})
async def chat(req: ChatRequest, request: Request, settings: SettingsDep, engine: EngineDep, retriever: RetrieverDep,
               rag_k: RagKDep, prompts: PromptsDep, store: ChatStoreDep) -> ChatReply | EventSourceResponse:
    arrived = asyncio.get_running_loop().time()
    deadline = arrived + settings.request_timeout
    message = valid_unicode(req.message, "message")
    key = getattr(request.state, "api_key", None)
    owner = key.id if key is not None else ""
    if req.session_id is None:
        session = await run_in_threadpool(store.new_session, owner)
    elif await run_in_threadpool(store.is_owner, req.session_id, owner):
        session = req.session_id
    else:
        raise NotFound(f"session_id: no conversation {req.session_id!r} of yours is kept here (ids are the ones "
                       f"/chat answers with; conversations are kept {settings.chat_retention_days:g} days). Leave "
                       "session_id out to start one.", "session_id")
    history = await run_in_threadpool(store.history, session, settings.history_turns)
    hits = None
    if retriever is not None and rag_k > 0:
        t0 = time.monotonic()
        hits = await run_in_threadpool(retriever.search, retrieval_query(message, history), rag_k)
        observe(request, retrieval=time.monotonic() - t0)
    params = SamplingParams(max_new_tokens=settings.max_new_tokens, requested=True)
    threshold = min_cosine_for(retriever.embedder.name, settings.handoff_min_cosine) if retriever is not None else None
    turn = _Turn(request, store, settings, prompts, session, message, hits, f"resp_{uuid.uuid4().hex}", threshold)
    if req.stream:
        async with within(deadline, settings):
            messages, deltas, first = await _open_stream(engine, history, message, hits or [], prompts, params)
        observe(request, ttft=asyncio.get_running_loop().time() - arrived)
        return EventSourceResponse(_events(turn, messages, deltas, first, deadline, settings.request_timeout), ping=15)
    async with within(deadline, settings):
        messages, gen = await _answer(engine, history, message, hits or [], prompts, params)
    return await turn.finish(messages, gen.text, gen.prompt_tokens, gen.completion_tokens)


@dataclass
class _Turn:
    """One customer message being answered: what its reply is made of, and how it is kept."""

    request: Request
    store: ChatStore
    settings: ServeSettings
    prompts: Prompts
    session: str
    message: str
    hits: list[Hit] | None
    response_id: str
    min_cosine: float | None

    def sources(self) -> list[Source]:
        return [Source(**h.citation()) for h in self.hits or []]

    async def finish(self, messages: list[dict], text: str, prompt_tokens: int, completion_tokens: int) -> ChatReply:
        """The reply as sent (an empty answer replaced by the decline, which offers a person), kept with the
        conversation and counted against the key."""
        s = self.settings
        reason = handoff_reason(self.message, self.hits, text, self.prompts, self.min_cosine,
                                s.handoff_phrases or ASK_FOR_PERSON)
        reply = text
        if not reply.strip():  # never an empty bubble: the decline (and the handoff says why)
            log.warning("the model answered nothing (session %s): replying with the decline", self.session)
            reply = self.prompts.decline_for(detect_language(self.message))
        served = Served(id=self.response_id, model=s.served_name, messages=messages, response=reply,
                        sources=[h.chunk_id for h in self.hits or []], session_id=self.session)
        await run_in_threadpool(self.store.add, self.session, self.message, served)
        spent(self.request, prompt_tokens, completion_tokens, reply, messages)
        return ChatReply(session_id=self.session, response_id=served.id, reply=reply, sources=self.sources(),
                         handoff=Handoff(needed=reason is not None, reason=reason),
                         usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                     total_tokens=prompt_tokens + completion_tokens))


async def _answer(engine: Engine, history: list[dict], message: str, hits, prompts, params: SamplingParams):
    """The prompt used and the answer: with as much of the history as fits the model's context (oldest
    exchanges left out first)."""
    for start in range(0, len(history) + 1, 2):
        messages = build_rag_messages([*history[start:], {"role": "user", "content": message}], hits, prompts=prompts)
        try:
            return messages, await engine.generate(messages, params)
        except ContextTooLong:
            if start >= len(history):
                raise
    raise AssertionError("unreachable")


async def _open_stream(engine: Engine, history: list[dict], message: str, hits, prompts, params: SamplingParams):
    """As _answer, streamed: the prompt, the engine's stream and its first piece, awaited before the response
    starts so that a prompt the engine refuses gets its error status (or is retried with less history)."""
    for start in range(0, len(history) + 1, 2):
        messages = build_rag_messages([*history[start:], {"role": "user", "content": message}], hits, prompts=prompts)
        deltas = engine.stream(messages, params)
        try:
            return messages, deltas, await anext(deltas, None)
        except ContextTooLong:
            await deltas.aclose()
            if start >= len(history):
                raise
        except BaseException:
            await deltas.aclose()
            raise
    raise AssertionError("unreachable")


async def _events(turn: _Turn, messages: list[dict], deltas: AsyncIterator[Delta], first: Delta | None,
                  deadline: float, timeout: float) -> AsyncIterator[dict]:
    """The answer as server-sent events; kept (and fed back on) only once it ended: a client that leaves
    mid-answer stops the generation and leaves nothing behind."""
    yield _event("start", {"session_id": turn.session, "response_id": turn.response_id,
                           "sources": [s.model_dump() for s in turn.sources()]})
    said, last, d = [], None, first
    async with aclosing(deltas):
        try:
            while d is not None:
                if d.text:
                    said.append(d.text)
                    yield _event("delta", {"text": d.text})
                if d.finish_reason:
                    last = d
                async with asyncio.timeout_at(deadline):
                    d = await anext(deltas, None)
        except TimeoutError:  # closing the engine's stream (aclosing) stops the generation
            yield _event("error", {"error": {"message": too_slow(timeout), "type": "server_error", "param": None,
                                             "code": "timeout"}})
            return
    reply = await turn.finish(messages, "".join(said), (last and last.prompt_tokens) or 0,
                              (last and last.completion_tokens) or 0)
    yield {"event": "end", "data": reply.model_dump_json()}


def _event(kind: str, data: dict) -> dict:
    return {"event": kind, "data": json.dumps(data, ensure_ascii=False)}


@router.post("/feedback", response_model=FeedbackReply, responses=errors(400, 404, 413, 503))
async def feedback(req: FeedbackRequest, settings: SettingsDep, store: ChatStoreDep) -> FeedbackReply:
    if req.correction is not None:
        valid_unicode(req.correction, "correction")
    served = await run_in_threadpool(store.response, req.response_id)
    if served is None:
        raise NotFound(f"response_id: no answer {req.response_id!r} is kept here (answers of POST /chat are, for "
                       f"{settings.chat_retention_days:g} days).", "response_id")
    if settings.feedback_file is None:
        raise ChatOff("this server has no feedback file: serve with a workspace, or set feedback_file (env "
                      "ONBOARD_FEEDBACK_FILE).")
    record = {"id": f"fb_{uuid.uuid4().hex}", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "model": served.model, "messages": served.messages, "response": served.response, "rating": req.rating,
              "correction": req.correction, "sources": served.sources, "response_id": served.id}
    await run_in_threadpool(add_feedback, settings.feedback_file, record)
    return FeedbackReply(id=record["id"], response_id=served.id)
