"""The FastAPI app: OpenAI-compatible chat completions grounded on the RAG index.

This module only builds the app. The engine and the retriever are created in its lifespan and kept
on `app.state`, never at import; the routes (`serving.routes`) read them through `serving.deps`.
Every error leaves as one `ErrorResponse` shape.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from rag.errors import OnboardError
from serving.auth import OPEN_PATHS, KeyCheck, RateLimiter
from serving.engines.base import Engine
from serving.errors import BadSetting, ServingError
from serving.keys import KeyStore
from serving.limits import Admission, BodyLimit
from serving.logs import log_config
from serving.metrics import Metrics, Observe
from serving.openapi import openapi_without_422
from serving.protocol import ErrorInfo, ErrorResponse
from serving.routes import chat, embeddings, health, models, page, sessions
from serving.sessions import ChatStore
from serving.settings import ServeSettings, resolve_rag_k, retrieval_required, served_prompts

log = logging.getLogger(__name__)


def create_app(settings: ServeSettings, engine: Engine | None = None, retriever=None,
               close_engine: bool = False, extend: Callable[[FastAPI], None] | None = None) -> FastAPI:
    """Build the app. `engine`/`retriever` may be passed in (tests, and `run`, which loads them before
    the server starts); the caller then closes the engine, unless `close_engine` hands that to the app's
    shutdown. Otherwise the lifespan creates them from `settings` and closes the engine at shutdown.
    `extend(app)` adds what a caller serves beside the model (the agent's interview router: serving
    never imports the agent)."""
    docs = {} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="Onboard", version="0.1.0", lifespan=_lifespan, **docs)
    app.state.settings = settings
    app.state.given = (engine, retriever)
    app.state.close_engine = engine is None or close_engine
    app.state.keys = KeyStore(settings.keys_file) if settings.keys_file else None
    app.state.chat = ChatStore(settings.conversations_file) if settings.conversations_file else None
    app.state.rate_limiter = RateLimiter()
    app.state.metrics = Metrics(app.state)
    app.add_middleware(Admission)
    app.add_middleware(BodyLimit)
    app.add_middleware(KeyCheck)  # before the body is read or a queue place is taken
    app.add_middleware(Observe)  # counts every answer, 401s and 429s included
    if settings.cors_origins:  # outermost: a browser's preflight needs no key, and a 401 or 429 carries CORS headers
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"],
                           expose_headers=["retry-after", "x-ratelimit-limit-requests",
                                           "x-ratelimit-remaining-requests"])
    app.add_exception_handler(ServingError, _serving_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    for module in (chat, embeddings, models, health, page):
        app.include_router(module.router)
    if settings.conversations_file:  # /chat and /feedback keep conversations: only a server with a place for them has them
        app.include_router(sessions.router)
    if extend is not None:
        extend(app)
    openapi_without_422(app, OPEN_PATHS)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = app.state
    engine, retriever = state.given
    try:
        # Blocking start-up work (reading the model card, loading weights, opening the index) runs in a
        # thread so the loop stays free, and fails here rather than on the first request.
        state.rag_k = await run_in_threadpool(resolve_rag_k, state.settings)
        state.prompts = await run_in_threadpool(served_prompts, state.settings)
        state.engine = engine if engine is not None else await run_in_threadpool(_load_engine, state.settings)
        state.retriever = retriever
        if state.chat is not None:
            gone = await run_in_threadpool(state.chat.prune, state.settings.chat_retention_days)
            if gone:
                log.info("deleted %d answers older than %g days from %s", gone, state.settings.chat_retention_days,
                         state.settings.conversations_file)
        if retriever is None and state.rag_k > 0:
            if state.settings.workspace:
                state.retriever = await run_in_threadpool(_open_retriever, state.settings)
            else:
                _without_index(state.settings)
        if state.settings.query_expansion == "hyde":
            state.retriever = _expanding(state.retriever, state.engine)
    except Exception as e:
        state.startup_error = e  # `run` re-raises it, so the CLI prints it as one line
        if state.close_engine and getattr(state, "engine", None) is not None:
            await state.engine.close()
        raise
    _say_who_may_call(state)
    if state.chat is not None and state.retriever is not None:
        from serving.handoff import min_cosine_for

        if min_cosine_for(state.retriever.embedder.name, state.settings.handoff_min_cosine) is None:
            log.warning("/chat: no handoff threshold is known for the embedding model %s, so \"nothing relevant\" "
                        "is judged by BM25 alone; measure one with bench/handoff_threshold.py and set "
                        "ONBOARD_HANDOFF_MIN_COSINE", state.retriever.embedder.name)
    log.info("serving %s (rag k=%d, retrieval %s)", state.settings.served_name, state.rag_k,
             "on" if state.retriever is not None else "off")
    try:
        yield
    finally:
        for store in (state.keys, state.chat):
            if store is not None:
                store.close()
        if state.close_engine:
            await state.engine.close()


def _say_who_may_call(state) -> None:
    """Log whether keys are asked for; warn when a server reachable from other machines asks for none."""
    settings = state.settings
    if state.keys is not None and state.keys.required():
        active = sum(1 for k in state.keys.list() if k.revoked is None)
        log.info("API keys required (%d active in %s)", active, settings.keys_file)
    elif settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("no API keys: anyone who can reach %s:%d may use this server; `onboard keys create NAME -w "
                    "WORKSPACE` makes one, and from then on every request needs a key", settings.host, settings.port)


def _load_engine(settings: ServeSettings) -> Engine:
    from serving.engines import load_engine

    return load_engine(settings)


def _expanding(retriever, engine: Engine):
    """`retriever` with query expansion by the served model's hypothetical answers (settings.query_expansion hyde).

    Raises:
        BadSetting: the server retrieves nothing.
    """
    from dataclasses import replace

    from rag import Retriever
    from serving.context import hyde_writer

    if retriever is None:
        raise BadSetting("query_expansion hyde: this server retrieves nothing (no index, or rag_k 0), so there is "
                         "no question to expand; unset ONBOARD_QUERY_EXPANSION or serve a workspace's index.")
    if retriever.writer is not None:  # given ready (tests, embedding apps)
        return retriever
    return Retriever(replace(retriever.cfg, query_expansion="hyde"), retriever.embedder, writer=hyde_writer(engine))


def _open_retriever(settings: ServeSettings):
    from rag import RagConfig, Retriever

    retriever = Retriever(RagConfig.from_workspace(settings.workspace, collection=settings.collection))
    retriever.count()  # fail at start-up, not on the first request, if the index is missing
    retriever.embedder.embed_query("warm-up")  # the embedding model loads now, not in a customer's first answer
    return retriever


def _without_index(settings: ServeSettings) -> None:
    """No workspace index to retrieve from: refuse when retrieval is required, else say loudly that
    answers come from the model alone."""
    from serving.errors import NoIndex

    why = retrieval_required(settings)
    if why:
        raise NoIndex(f"{why}, but there is no index to retrieve from (no workspace with an ingested index). "
                      "Run `onboard ingest DOCS` into the workspace you serve (--workspace), or pass --rag-k 0 "
                      "(env ONBOARD_RAG_K=0) to serve this model without documents on purpose.")
    log.warning("serving without retrieval: no workspace index, so answers come from the model alone")


def _error(status: int, message: str, type_: str, param: str | None = None, code: str | None = None,
           headers: dict | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorInfo(message=message, type=type_, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


async def _serving_error(request: Request, exc: ServingError) -> JSONResponse:
    return _error(exc.status_code, str(exc), exc.type, getattr(exc, "param", None), exc.code)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = _param(first.get("loc", ()))
    if first.get("type") == "extra_forbidden":  # OpenAI's words for an argument it does not know
        return _error(400, f"Unrecognized request argument supplied: {where}", "invalid_request_error", where,
                      "unknown_parameter")
    if first.get("type") == "missing":
        return _error(400, f"{where}: a required parameter is missing.", "invalid_request_error", where,
                      "missing_required_parameter")
    return _error(400, f"{where}: {first.get('msg', 'invalid request')}", "invalid_request_error", where or None)


def _param(loc) -> str:
    """A pydantic error location as OpenAI names a parameter: messages[0].role (the union member names
    pydantic adds, like `str` or `list[ContentPart]`, left out)."""
    out = ""
    for x in loc:
        if x == "body":
            continue
        if isinstance(x, int):
            out += f"[{x}]"
        elif "[" in x or x in ("str", "int", "float", "bool", "dict", "list") or x.startswith("function-"):
            continue
        else:
            out += f".{x}" if out else x
    return out


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    allow = exc.headers.get("Allow") if exc.headers else None
    if exc.status_code == 405:  # every method of the path: Starlette names only the first route's (GET or POST)
        allow = ", ".join(m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
                          if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in request.app.routes))
    return _error(exc.status_code, str(exc.detail), "invalid_request_error", headers={"Allow": allow} if allow else None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return _error(500, "internal error; see the server log", "server_error")


def run(settings: ServeSettings, extend: Callable[[FastAPI], None] | None = None) -> None:
    """Serve until interrupted (`extend`: see `create_app`). Everything that can fail at start-up (the port, the model card, the
    weights, the index) is checked before uvicorn starts, so a failure is one line, not a traceback.

    Raises:
        PortInUse: another process listens on `settings.host:settings.port`.
        ModelNotLoaded: the transformers engine's `settings.model` is not a model folder or its weights
            are truncated or corrupt; the remote engine's upstream does not serve `remote_model`.
        BadContract: the model card is unreadable or of an unknown schema version.
        NoIndex: the model needs retrieval and the workspace has no index.
        UpstreamError: the remote engine's upstream cannot be reached.
        ServingError: the server could not start (its log says why).
    """
    import asyncio

    import uvicorn

    _check_port(settings.host, settings.port)  # before minutes of loading weights
    if settings.engine == "transformers":
        from serving.engines.hf import require_model_folder

        require_model_folder(settings.model)
    rag_k = resolve_rag_k(settings)
    if rag_k > 0 and not settings.workspace and retrieval_required(settings):
        _without_index(settings)  # raises
    retriever = _open_retriever(settings) if rag_k > 0 and settings.workspace else None
    engine = _load_engine(settings)
    app = create_app(settings, engine=engine, retriever=retriever, close_engine=True,  # shutdown closes it
                     extend=extend)
    server = uvicorn.Server(server_config(app, settings))
    try:
        server.run()
    except SystemExit:  # uvicorn exits on a failed start-up (lifespan or bind), after logging why
        if server.started:
            raise
    if not server.started:
        asyncio.run(engine.close())  # the lifespan never ran, so nothing closed it (and it never served)
        startup_error = getattr(app.state, "startup_error", None)
        if isinstance(startup_error, OnboardError):  # the user's to fix: one line, not a traceback
            raise startup_error
        raise ServingError(f"the server did not start on {settings.host}:{settings.port}; the log above says why.")


def server_config(app: FastAPI, settings: ServeSettings, log_level: str = "info"):
    """uvicorn's configuration for `app`: address, and the drain on shutdown (settings.drain_seconds)."""
    import uvicorn

    logs = {} if settings.log_format == "text" else {"log_config": log_config("json", log_level), "access_log": False}
    return uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                          timeout_graceful_shutdown=settings.drain_seconds, **logs)


def _check_port(host: str, port: int) -> None:
    """Raise `PortInUse` when `host:port` cannot be bound (the socket is closed again at once)."""
    import socket

    from serving.errors import PortInUse

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError as e:
            raise PortInUse(f"cannot listen on {host}:{port} ({e.strerror}): another server is probably using it. "
                            "Stop it, or pass --port N (env ONBOARD_PORT).") from None
