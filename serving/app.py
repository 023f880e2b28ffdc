"""The FastAPI app: OpenAI-compatible chat completions grounded on the RAG index.

The engine and retriever are created in the app's lifespan and kept on `app.state`, never at import.
Every error leaves as one `ErrorResponse` shape.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.config import ServeConfig
from serving.engines.base import Engine, SamplingParams
from serving.errors import BadRequest, ModelNotLoaded, ServingError, UnknownModel
from serving.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    Choice,
    DeltaMessage,
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ErrorInfo,
    ErrorResponse,
    ModelCard,
    ModelList,
    Source,
    StreamChoice,
    Usage,
)

log = logging.getLogger(__name__)


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def _error(status: int, message: str, type_: str) -> JSONResponse:
    body = ErrorResponse(error=ErrorInfo(message=message, type=type_, code=status))
    return JSONResponse(body.model_dump(), status_code=status)


def create_app(cfg: ServeConfig, engine: Engine | None = None, retriever=None) -> FastAPI:
    """Build the app. `engine`/`retriever` may be passed in (tests); otherwise the lifespan creates them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        app.state.engine = engine
        if app.state.engine is None:
            from serving.engines.hf import TransformersEngine

            app.state.engine = TransformersEngine(cfg.model)
        app.state.retriever = retriever
        if app.state.retriever is None and cfg.workspace and cfg.rag_k > 0:
            from rag import RagConfig, Retriever

            app.state.retriever = Retriever(RagConfig.from_workspace(cfg.workspace, collection=cfg.collection))
            app.state.retriever.count()  # fail at start-up, not on the first request, if the index is missing
        yield

    app = FastAPI(title="Onboard", version="0.1.0", lifespan=lifespan)
    app.state.cfg = cfg

    @app.middleware("http")
    async def limit_size(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > cfg.max_request_bytes:
            return _error(413, f"request body over {cfg.max_request_bytes} bytes", "request_too_large")
        return await call_next(request)

    @app.exception_handler(ServingError)
    async def _serving_error(request: Request, exc: ServingError):
        return _error(exc.status_code, str(exc), exc.type)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}", "invalid_request_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), "invalid_request_error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error")
        return _error(500, "internal error; see the server log", "server_error")

    @app.get("/healthz")
    async def healthz(request: Request) -> dict:
        r = request.app.state.retriever
        return {"status": "ok", "model": cfg.served_name, "rag": r is not None}

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=cfg.served_name)])

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(req: ChatCompletionRequest, request: Request, engine: EngineDep):
        if req.model and req.model != cfg.served_name:
            raise UnknownModel(f"model {req.model!r} is not served here; this server serves {cfg.served_name!r}.")
        if req.messages[-1].role != "user":
            raise BadRequest("messages: the last message must be the user's.")
        messages, sources = await _with_context(request, req)
        params = SamplingParams(
            max_new_tokens=min(req.max_tokens or cfg.max_new_tokens, cfg.max_new_tokens),
            temperature=req.temperature,
            top_p=req.top_p,
        )
        if req.stream:
            from sse_starlette import EventSourceResponse

            return EventSourceResponse(_stream(engine, messages, params, sources), ping=15)
        gen = await run_in_threadpool(engine.generate, messages, params)
        return ChatCompletionResponse(
            model=cfg.served_name,
            choices=[Choice(message=ChatMessage(role="assistant", content=gen.text), finish_reason=gen.finish_reason)],
            usage=Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
                        total_tokens=gen.prompt_tokens + gen.completion_tokens),
            sources=sources,
        )

    @app.post("/v1/embeddings")
    async def embeddings(req: EmbeddingRequest, request: Request) -> EmbeddingResponse:
        """Embeddings from the retriever's model (all-MiniLM-L6-v2 by default), so clients and other
        Onboard instances can embed exactly as this index does."""
        embedder = _embedder(request.app)
        if req.model and req.model != embedder.name:
            raise UnknownModel(f"embedding model {req.model!r} is not served here; this server embeds with "
                               f"{embedder.name!r}.")
        texts = [req.input] if isinstance(req.input, str) else req.input
        if len(texts) > 2048 or any(not isinstance(t, str) or not t for t in texts):
            raise BadRequest("input: 1 to 2048 non-empty strings.")
        vecs = await run_in_threadpool(embedder.embed, texts)
        n_tokens = sum(await run_in_threadpool(lambda: [embedder.count_tokens(t) for t in texts]))
        if req.encoding_format == "base64":
            import base64

            import numpy as np

            data = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vecs]
        else:
            data = vecs
        return EmbeddingResponse(data=[EmbeddingData(index=i, embedding=e) for i, e in enumerate(data)],
                                 model=embedder.name, usage=EmbeddingUsage(prompt_tokens=n_tokens, total_tokens=n_tokens))

    def _embedder(app: FastAPI):
        if getattr(app.state, "embedder", None) is None:
            r = app.state.retriever
            if r is not None:
                app.state.embedder = r.embedder
            else:
                from rag.embeddings import Embedder

                app.state.embedder = Embedder()
        return app.state.embedder

    async def _with_context(request: Request, req: ChatCompletionRequest) -> tuple[list[dict], list[Source]]:
        from rag import build_rag_messages

        messages = [m.model_dump() for m in req.messages]
        retriever = request.app.state.retriever
        if retriever is None or not req.rag:
            return messages, []
        hits = await run_in_threadpool(retriever.search, messages[-1]["content"], cfg.rag_k)
        return build_rag_messages(messages, hits), [Source(**h.citation()) for h in hits]

    async def _stream(engine: Engine, messages, params, sources) -> AsyncIterator[str]:
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: DeltaMessage, finish=None, srcs=None) -> str:
            c = ChatCompletionChunk(id=cid, created=created, model=cfg.served_name,
                                    choices=[StreamChoice(delta=delta, finish_reason=finish)], sources=srcs)
            return json.dumps(c.model_dump(exclude_none=True), ensure_ascii=False)

        yield chunk(DeltaMessage(role="assistant", content=""), srcs=sources)
        async for d in iterate_in_threadpool(engine.stream(messages, params)):
            if d.text:
                yield chunk(DeltaMessage(content=d.text))
            if d.finish_reason:
                yield chunk(DeltaMessage(), finish=d.finish_reason)
        yield "[DONE]"

    return app


def run(cfg: ServeConfig) -> None:
    """Serve until interrupted.

    Raises:
        ModelNotLoaded: `cfg.model` is not a model folder (checked before the server starts).
        ServingError: the server could not start (its log says why).
    """
    import uvicorn

    if not (cfg.model / "config.json").exists():
        raise ModelNotLoaded(f"{cfg.model}: not a model folder (no config.json). Train and merge first "
                             f"(`onboard train`, `onboard merge`) or pass --model DIR.")
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host=cfg.host, port=cfg.port, log_level="info"))
    server.run()
    if not server.started:  # uvicorn logs a failed start-up and returns instead of raising
        raise ServingError(f"the server did not start on {cfg.host}:{cfg.port}; the log above says why.")

