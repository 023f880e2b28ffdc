"""POST /v1/chat/completions (grounded on the RAG index, streamed or not) and POST /tokenize (vLLM's
chat token count, so a remote Onboard engine can count exactly)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace

from fastapi import APIRouter, Request

from rag import Retriever
from rag.prompt import Prompts
from serving.auth import charge
from serving.conformance import check_request, plain_messages, stop_strings
from serving.context import with_context
from serving.deps import EngineDep, PromptsDep, RagKDep, RetrieverDep, SettingsDep
from serving.engines.base import Delta, Generation, SamplingParams
from serving.errors import BadRequest, DeadlineExceeded, UnknownModel
from serving.metrics import observe
from serving.openapi import errors, sse
from serving.protocol import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChoiceLogprobs,
    DeltaMessage,
    Source,
    StreamChoice,
    TokenizeRequest,
    TokenizeResponse,
    Usage,
)
from serving.settings import ServeSettings
from serving.sse import Events, frame

log = logging.getLogger(__name__)
router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse,
             responses={**sse("with stream true: chat.completion.chunk objects, then [DONE]"),
                        **errors(400, 404, 413, 502, 503, 504)})
async def chat_completions(req: ChatCompletionRequest, request: Request, settings: SettingsDep, engine: EngineDep,
                           retriever: RetrieverDep, rag_k: RagKDep,
                           prompts: PromptsDep) -> ChatCompletionResponse | Events:
    arrived = asyncio.get_running_loop().time()
    deadline = arrived + settings.request_timeout
    _check_model(req.model, settings)
    check_request(req)
    plain = plain_messages(req.messages)
    if plain[-1]["role"] not in ("user", "tool"):
        raise BadRequest("messages: the last message must be the user's (or a tool's result).", "messages")
    if req.stream_options is not None and not req.stream:
        raise BadRequest("stream_options: only allowed when stream is true.", "stream_options")
    asked = req.max_completion_tokens or req.max_tokens
    if asked is not None and asked > settings.max_new_tokens:
        name = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise BadRequest(f"{name}: this server answers with at most {settings.max_new_tokens} tokens (its "
                         f"--max-new-tokens, env ONBOARD_MAX_NEW_TOKENS); ask for {settings.max_new_tokens} or fewer.",
                         name)
    t0 = time.monotonic()
    messages, sources = await _with_context(plain, retriever if req.rag else None, rag_k, prompts)
    if req.rag and retriever is not None and rag_k > 0:
        observe(request, retrieval=time.monotonic() - t0)
    params = SamplingParams(
        max_new_tokens=asked or settings.max_new_tokens,
        requested=asked is not None,
        temperature=req.temperature,
        top_p=req.top_p,
        seed=req.seed,
        stop=stop_strings(req),
        logprobs=(req.top_logprobs or 0) if req.logprobs else None,
        response_format=req.response_format if (req.response_format or {}).get("type") != "text" else None,
        tools=req.tools or None,
        tool_choice=req.tool_choice,
    )
    one_call = req.parallel_tool_calls is False
    if req.stream:
        usage = bool(req.stream_options and req.stream_options.include_usage)
        deltas = engine.stream(messages, params)
        # The first piece is awaited before the response starts, so a request the engine refuses (a
        # prompt longer than the model's context) gets its error status, not a 200 and a broken stream.
        try:
            async with within(deadline, settings):
                first = await anext(deltas, None)
        except BaseException:
            await deltas.aclose()
            raise
        observe(request, ttft=asyncio.get_running_loop().time() - arrived)
        return Events(_stream(deltas, first, sources, settings.served_name, usage, one_call,
                              (deadline, settings.request_timeout),
                              lambda p, c, text: spent(request, p, c, text, plain)),
                      ping=15)
    # n choices: sampled one after another, choice i with seed + i when a seed is given (reproducible, and
    # not n copies of one answer).
    async with within(deadline, settings):
        gens = [await engine.generate(messages, replace(params, seed=None if req.seed is None else req.seed + i))
                for i in range(req.n)]
    completion = sum(g.completion_tokens for g in gens)
    spent(request, gens[0].prompt_tokens, completion, gens[0].text, plain)
    return ChatCompletionResponse(
        model=settings.served_name,
        choices=[Choice(index=i, message=_message(g, one_call), finish_reason=g.finish_reason,
                        logprobs=_logprobs(g.logprobs)) for i, g in enumerate(gens)],
        usage=Usage(prompt_tokens=gens[0].prompt_tokens, completion_tokens=completion,
                    total_tokens=gens[0].prompt_tokens + completion),
        sources=sources,
    )


def spent(request: Request, prompt: int, completion: int, answer: str, plain: list[dict]) -> None:
    """An answer's tokens: counted in the metrics and against the key that asked; with `log_bodies`, the
    question and the answer are logged."""
    observe(request, prompt=prompt, completion=completion)
    charge(request, prompt + completion)
    if request.app.state.settings.log_bodies:
        question = next((m["content"] for m in reversed(plain) if m["role"] == "user"), "")
        log.info("chat answered", extra={"request_id": getattr(request.state, "request_id", None),
                                         "question": question, "answer": answer})


@router.post("/tokenize", responses=errors(400, 404, 413, 501, 502))
async def tokenize(req: TokenizeRequest, settings: SettingsDep, engine: EngineDep) -> TokenizeResponse:
    """The messages' prompt tokens as the model sees them (chat template included, no retrieval)."""
    _check_model(req.model, settings)
    return TokenizeResponse(count=await engine.count_tokens(plain_messages(req.messages)))


def _message(g: Generation, one_call: bool) -> AssistantMessage:
    """The answer as OpenAI's message: its text, and its tool calls (content None when there is no text)."""
    if not g.tool_calls:
        return AssistantMessage(content=g.text)
    calls = g.tool_calls[:1] if one_call else g.tool_calls
    return AssistantMessage(content=g.text or None, tool_calls=[c.openai() for c in calls])


def _logprobs(entries: list | None) -> ChoiceLogprobs | None:
    """An engine's TokenLogprob list as OpenAI's `logprobs` object (None when not asked for)."""
    return None if entries is None else ChoiceLogprobs(content=[e.openai() for e in entries])


@asynccontextmanager
async def within(deadline: float, settings: ServeSettings):
    """Cancel what runs inside (the engine stops generating) at the request's deadline: DeadlineExceeded."""
    try:
        async with asyncio.timeout_at(deadline):
            yield
    except TimeoutError:
        raise DeadlineExceeded(too_slow(settings.request_timeout)) from None


def too_slow(timeout: float) -> str:
    return (f"the answer took longer than this server's request_timeout of {timeout:g} s (env ONBOARD_REQUEST_TIMEOUT) "
            "and was stopped: ask for fewer max_tokens, or try again when the server is less busy")


def _check_model(requested: str | None, settings: ServeSettings) -> None:
    if requested and requested != settings.served_name:
        raise UnknownModel(f"model {requested!r} is not served here; this server serves {settings.served_name!r}.")


async def _with_context(plain: list[dict], retriever: Retriever | None, k: int,
                        prompts: Prompts) -> tuple[list[dict], list[Source]]:
    """The messages with the retrieved chunks in the system prompt, laid out as in training, and their citations."""
    messages, hits = await with_context(plain, retriever, k, prompts)
    return messages, [Source(**h.citation()) for h in hits]


async def _stream(deltas: AsyncIterator[Delta], first: Delta | None, sources: list[Source],
                  served_name: str, include_usage: bool, one_call: bool = False,
                  deadline: tuple[float, float] | None = None,
                  spent: Callable[[int, int, str], None] | None = None) -> AsyncIterator[bytes]:
    """The chunks, as SSE frames; at `deadline` (loop time, the timeout in seconds) the generation stops and an
    error event ends the stream. `spent(prompt, completion)` is told the answer's tokens when it ends (metrics, the key's
    rate limit)."""
    chunk = Chunks(served_name)

    async def pieces() -> AsyncIterator[Delta]:
        if first is not None:
            yield first
        while True:
            async with asyncio.timeout_at(deadline[0] if deadline else None):
                d = await anext(deltas, None)
            if d is None:
                return
            yield d

    yield frame(chunk(DeltaMessage(role="assistant", content=""), srcs=sources))
    # aclosing: when the client disconnects, sse-starlette cancels this generator, and closing the
    # engine's stream stops the generation (the local engine at the next token, a remote upstream by
    # its connection closing).
    last, said = None, []
    async with aclosing(deltas):
        try:
            async for d in pieces():
                if d.text:
                    said.append(d.text)
                    yield frame(chunk.text(d.text) if d.logprobs is None
                                else chunk(DeltaMessage(content=d.text), logprobs=_logprobs(d.logprobs)))
                for i, call in enumerate((d.tool_calls or [])[: 1 if one_call else None]):
                    yield frame(chunk(DeltaMessage(tool_calls=[{"index": i, **call.openai()}])))
                if d.finish_reason:
                    last = d
                    yield frame(chunk(DeltaMessage(), finish=d.finish_reason))
        except TimeoutError:  # the deadline: closing the engine's stream (aclosing) stops the generation
            yield frame(json.dumps({"error": {"message": too_slow(deadline[1]), "type": "server_error", "param": None,
                                              "code": "timeout"}}))
            yield frame("[DONE]")
            return
    if spent is not None and last is not None and last.prompt_tokens is not None:
        spent(last.prompt_tokens, last.completion_tokens or 0, "".join(said))
    if include_usage:  # stream_options.include_usage: a last chunk with no choices and the usage
        if last is None or last.prompt_tokens is None or last.completion_tokens is None:
            yield frame(json.dumps({"error": {"message": "the engine reported no token counts, so the usage asked "
                                              "for by stream_options.include_usage cannot be sent",
                                              "type": "server_error", "param": "stream_options", "code": None}}))
        else:
            yield frame(chunk(None, usage=Usage(prompt_tokens=last.prompt_tokens,
                                                completion_tokens=last.completion_tokens,
                                                total_tokens=last.prompt_tokens + last.completion_tokens)))
    yield frame("[DONE]")


class Chunks:
    """The chat.completion.chunk objects of one streamed answer, as JSON text."""

    def __init__(self, served_name: str):
        self.id, self.created, self.model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), served_name
        # A piece of text's chunk (nearly every chunk) is written straight from its parts: the same JSON as
        # self(DeltaMessage(content=text)), without building and dumping three pydantic models per token.
        start = json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": served_name}, ensure_ascii=False)
        self._head = start[:-1] + ', "choices": [{"index": 0, "delta": {"content": '
        self._tail = '}, "finish_reason": null, "logprobs": null}]}'

    def __call__(self, delta: DeltaMessage | None, finish=None, srcs=None, usage: Usage | None = None,
                 logprobs: ChoiceLogprobs | None = None) -> str:
        choices = [] if delta is None else [StreamChoice(delta=delta, finish_reason=finish, logprobs=logprobs)]
        c = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=choices, sources=srcs,
                                usage=usage).model_dump()
        # finish_reason and logprobs are on every chunk (null until the end), as OpenAI sends them; the
        # delta's unset fields, and sources and usage where there are none, are left out.
        for c_ in c["choices"]:
            c_["delta"] = {k: v for k, v in c_["delta"].items() if v is not None}
        for key in ("sources", "usage"):
            if c[key] is None:
                del c[key]
        return json.dumps(c, ensure_ascii=False)

    def text(self, text: str) -> str:
        return self._head + json.dumps(text, ensure_ascii=False) + self._tail
