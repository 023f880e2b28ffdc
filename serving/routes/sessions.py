"""POST /chat: a customer's conversation, remembered by the server; POST /feedback: thumbs and corrections on
its answers, appended to the file `onboard data build --kind dpo` turns into preference pairs.

A follow-up ("and in China?", "那退货呢？") is retrieved for together with the customer's previous question, so
it finds what the conversation is about; the prompt holds the conversation's last `history_turns` messages
(fewer when the prompt would not fit the model's context). Each reply says whether a person should take over
(serving/handoff.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from rag import build_rag_messages
from rag.prompt import detect_language
from serving.conformance import valid_unicode
from serving.deps import EngineDep, PromptsDep, RagKDep, RetrieverDep, SettingsDep
from serving.engines.base import Engine, SamplingParams
from serving.errors import ChatOff, ContextTooLong, NotFound
from serving.handoff import ASK_FOR_PERSON, handoff_reason
from serving.metrics import observe
from serving.openapi import errors
from serving.protocol import (
    ChatReply,
    ChatRequest,
    FeedbackReply,
    FeedbackRequest,
    Handoff,
    Source,
    Usage,
)
from serving.routes.chat import spent, within
from serving.sessions import ChatStore, Served, add_feedback

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


@router.post("/chat", response_model=ChatReply, responses=errors(400, 404, 413, 503, 504))
async def chat(req: ChatRequest, request: Request, settings: SettingsDep, engine: EngineDep, retriever: RetrieverDep,
               rag_k: RagKDep, prompts: PromptsDep, store: ChatStoreDep) -> ChatReply:
    deadline = asyncio.get_running_loop().time() + settings.request_timeout
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
    async with within(deadline, settings):
        messages, gen = await _answer(engine, history, message, hits or [], prompts,
                                      SamplingParams(max_new_tokens=settings.max_new_tokens, requested=True))
    reason = handoff_reason(message, hits, gen.text, prompts, settings.handoff_min_cosine,
                            settings.handoff_phrases or ASK_FOR_PERSON)
    reply = gen.text
    if not reply.strip():  # never an empty bubble: the decline, which offers a person (and the handoff says why)
        log.warning("the model answered nothing (session %s): replying with the decline", session)
        reply = prompts.decline_for(detect_language(message))
    served = Served(id=f"resp_{uuid.uuid4().hex}", model=settings.served_name, messages=messages, response=reply,
                    sources=[h.chunk_id for h in hits or []], session_id=session)
    await run_in_threadpool(store.add, session, message, served)
    spent(request, gen.prompt_tokens, gen.completion_tokens, reply, messages)
    return ChatReply(session_id=session, response_id=served.id, reply=reply,
                     sources=[Source(**h.citation()) for h in hits or []],
                     handoff=Handoff(needed=reason is not None, reason=reason),
                     usage=Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
                                 total_tokens=gen.prompt_tokens + gen.completion_tokens))


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
