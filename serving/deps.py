"""What the routes need, as `Annotated[..., Depends(...)]` aliases: all of it lives on `app.state`,
put there by the app's lifespan (`serving.app`). The getters are `async def`: FastAPI runs a plain `def`
dependency in its thread pool, a thread hop per dependency per request for reading an attribute."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rag.embeddings import Embedder, OpenAIEmbedder
from rag.prompt import Prompts
from rag.retrieval import Retriever
from serving.engines.base import Engine
from serving.settings import ServeSettings


async def get_settings(request: Request) -> ServeSettings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_retriever(request: Request) -> Retriever | None:
    """None when the server runs without RAG (no workspace, or k = 0)."""
    return request.app.state.retriever


async def get_rag_k(request: Request) -> int:
    """Chunks per request, resolved at start-up (`serving.settings.resolve_rag_k`)."""
    return request.app.state.rag_k


async def get_prompts(request: Request) -> Prompts:
    """The wording of the system prompt: the workspace's prompt.yaml, else the built-in one (rag/prompt.py)."""
    return request.app.state.prompts


def get_embedder(request: Request) -> Embedder | OpenAIEmbedder:
    """The retriever's embedding model, or the default one when serving without RAG; loaded on first use.
    A sync dependency, so FastAPI runs the first (slow) load in its thread pool."""
    state = request.app.state
    if getattr(state, "embedder", None) is None:
        state.embedder = state.retriever.embedder if state.retriever is not None else Embedder()
    return state.embedder


SettingsDep = Annotated[ServeSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
RetrieverDep = Annotated[Retriever | None, Depends(get_retriever)]
RagKDep = Annotated[int, Depends(get_rag_k)]
PromptsDep = Annotated[Prompts, Depends(get_prompts)]
EmbedderDep = Annotated[Embedder | OpenAIEmbedder, Depends(get_embedder)]
