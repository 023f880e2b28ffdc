"""GET /v1/models: the chat model this server serves (first), and the embedding model of
/v1/embeddings; GET /v1/models/{id}: one of them."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import EmbedderDep, SettingsDep
from serving.errors import UnknownModel
from serving.openapi import errors
from serving.protocol import ModelCard, ModelList

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models")
async def list_models(settings: SettingsDep, embedder: EmbedderDep) -> ModelList:
    return ModelList(data=[ModelCard(id=settings.served_name), ModelCard(id=embedder.name, kind="embedding")])


@router.get("/models/{model_id:path}", responses=errors(400, 404))
async def get_model(model_id: str, settings: SettingsDep, embedder: EmbedderDep) -> ModelCard:
    if model_id not in (settings.served_name, embedder.name):
        raise UnknownModel(f"model {model_id!r} is not served here; this server serves {settings.served_name!r} "
                           f"and embeds with {embedder.name!r}.")
    return ModelCard(id=model_id, kind="chat" if model_id == settings.served_name else "embedding")
