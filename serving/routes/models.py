"""GET /v1/models: the one model this server serves."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import SettingsDep
from serving.protocol import ModelCard, ModelList

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models")
async def list_models(settings: SettingsDep) -> ModelList:
    return ModelList(data=[ModelCard(id=settings.served_name)])
