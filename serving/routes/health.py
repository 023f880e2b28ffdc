"""GET /healthz: the server is up, which model it serves and whether RAG is on."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import RetrieverDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(settings: SettingsDep, retriever: RetrieverDep) -> dict:
    return {"status": "ok", "model": settings.served_name, "rag": retriever is not None}
