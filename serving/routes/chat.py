"""POST /v1/chat/completions (grounded on the RAG index, streamed or not) and POST /tokenize (vLLM's
chat token count, so a remote Onboard engine can count exactly)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing

from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from rag import Retriever
from rag.prompt import Prompts
from serving.context import with_context
from serving.deps import EngineDep, PromptsDep, RagKDep, RetrieverDep, SettingsDep
from serving.engines.base import Delta, SamplingParams
from serving.errors import BadRequest, UnknownModel
from serving.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    Choice,
    DeltaMessage,
    Source,
    StreamChoice,
    TokenizeRequest,
    TokenizeResponse,
    Usage,
)
from serving.settings import ServeSettings

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(req: ChatCompletionRequest, settings: SettingsDep, engine: EngineDep,
                           retriever: RetrieverDep, rag_k: RagKDep,
                           prompts: PromptsDep) -> ChatCompletionResponse | EventSourceResponse:
    _check_model(req.model, settings)
    if req.messages[-1].role != "user":
        raise BadRequest("messages: the last message must be the user's.")
    messages, sources = await _with_context(req, retriever if req.rag else None, rag_k, prompts)
    params = SamplingParams(
        max_new_tokens=min(req.max_tokens or settings.max_new_tokens, settings.max_new_tokens),
        temperature=req.temperature,
        top_p=req.top_p,
    )
    if req.stream:
        deltas = engine.stream(messages, params)
        # The first piece is awaited before the response starts, so a request the engine refuses (a
        # prompt longer than the model's context) gets its error status, not a 200 and a broken stream.
        try:
            first = await anext(deltas, None)
        except BaseException:
            await deltas.aclose()
            raise
        return EventSourceResponse(_stream(deltas, first, sources, settings.served_name), ping=15)
    gen = await engine.generate(messages, params)
    return ChatCompletionResponse(
        model=settings.served_name,
        choices=[Choice(message=ChatMessage(role="assistant", content=gen.text), finish_reason=gen.finish_reason)],
        usage=Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
                    total_tokens=gen.prompt_tokens + gen.completion_tokens),
        sources=sources,
    )


@router.post("/tokenize")
async def tokenize(req: TokenizeRequest, settings: SettingsDep, engine: EngineDep) -> TokenizeResponse:
    """The messages' prompt tokens as the model sees them (chat template included, no retrieval)."""
    _check_model(req.model, settings)
    return TokenizeResponse(count=await engine.count_tokens([m.model_dump() for m in req.messages]))


def _check_model(requested: str | None, settings: ServeSettings) -> None:
    if requested and requested != settings.served_name:
        raise UnknownModel(f"model {requested!r} is not served here; this server serves {settings.served_name!r}.")


async def _with_context(req: ChatCompletionRequest, retriever: Retriever | None, k: int,
                        prompts: Prompts) -> tuple[list[dict], list[Source]]:
    """The messages with the retrieved chunks in the system prompt, laid out as in training, and their citations."""
    messages, hits = await with_context([m.model_dump() for m in req.messages], retriever, k, prompts)
    return messages, [Source(**h.citation()) for h in hits]


async def _stream(deltas: AsyncIterator[Delta], first: Delta | None, sources: list[Source],
                  served_name: str) -> AsyncIterator[str]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: DeltaMessage, finish=None, srcs=None) -> str:
        c = ChatCompletionChunk(id=cid, created=created, model=served_name,
                                choices=[StreamChoice(delta=delta, finish_reason=finish)], sources=srcs)
        return json.dumps(c.model_dump(exclude_none=True), ensure_ascii=False)

    async def pieces() -> AsyncIterator[Delta]:
        if first is not None:
            yield first
        async for d in deltas:
            yield d

    yield chunk(DeltaMessage(role="assistant", content=""), srcs=sources)
    # aclosing: when the client disconnects, sse-starlette cancels this generator, and closing the
    # engine's stream stops the generation (the local engine at the next token, a remote upstream by
    # its connection closing).
    async with aclosing(deltas):
        async for d in pieces():
            if d.text:
                yield chunk(DeltaMessage(content=d.text))
            if d.finish_reason:
                yield chunk(DeltaMessage(), finish=d.finish_reason)
    yield "[DONE]"
