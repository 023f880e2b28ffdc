"""GET /metrics: Prometheus metrics (serving/metrics.py).
GET /healthz: the process is up (liveness), which model it serves and whether RAG is on.
GET /readyz: a request would be served now (readiness): the engine is open (a remote one's upstream answers)
and the index can be read and the chat queue has room; 503 with the reasons otherwise, so a load balancer sends traffic elsewhere."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from serving.deps import EngineDep, RetrieverDep, SettingsDep
from serving.limits import chat_requests

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(settings: SettingsDep, retriever: RetrieverDep) -> dict:
    return {"status": "ok", "model": settings.served_name, "rag": retriever is not None}


@router.get("/readyz", responses={503: {"description": "Not ready: `reasons` says why."}})
async def readyz(request: Request, settings: SettingsDep, engine: EngineDep, retriever: RetrieverDep) -> JSONResponse:
    reasons, chunks = [], None
    if (why := await engine.ready()) is not None:
        reasons.append(why)
    if (inside := chat_requests(request.app.state)) >= settings.max_queue:
        reasons.append(f"the queue is full ({inside} chat requests, ONBOARD_MAX_QUEUE {settings.max_queue}): "
                       "another one would get 503")
    if retriever is not None:
        try:
            chunks = await run_in_threadpool(retriever.count)
        except Exception as e:  # an index deleted or corrupted under a running server
            reasons.append(f"the index cannot be read ({type(e).__name__}: {e})")
    body = {"status": "not ready" if reasons else "ready", "model": settings.served_name,
            "rag": retriever is not None, "chunks": chunks}
    if reasons:
        body["reasons"] = reasons
    return JSONResponse(body, status_code=503 if reasons else 200)


@router.get("/metrics", response_class=Response, responses={200: {
    "description": "Prometheus text exposition (serving/metrics.py lists the metrics).",
    "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)
