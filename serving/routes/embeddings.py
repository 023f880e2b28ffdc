"""POST /v1/embeddings: the retriever's embedding model (all-MiniLM-L6-v2 by default), so clients and
other Onboard instances (`RagConfig.embedding_url`) embed exactly as this index does."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from serving.deps import EmbedderDep
from serving.errors import BadRequest, UnknownModel
from serving.protocol import EmbeddingData, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage

router = APIRouter(prefix="/v1", tags=["embeddings"])


@router.post("/embeddings")
async def embeddings(req: EmbeddingRequest, embedder: EmbedderDep) -> EmbeddingResponse:
    if req.model and req.model != embedder.name:
        raise UnknownModel(f"embedding model {req.model!r} is not served here; this server embeds with "
                           f"{embedder.name!r}.")
    texts = [req.input] if isinstance(req.input, str) else req.input
    if len(texts) > 2048 or any(not isinstance(t, str) or not t for t in texts):
        raise BadRequest("input: 1 to 2048 non-empty strings.")
    vecs = await run_in_threadpool(embedder.embed, texts)
    n_tokens = sum(await run_in_threadpool(lambda: [embedder.count_tokens(t) for t in texts]))
    data = _base64(vecs) if req.encoding_format == "base64" else vecs
    return EmbeddingResponse(data=[EmbeddingData(index=i, embedding=e) for i, e in enumerate(data)],
                             model=embedder.name, usage=EmbeddingUsage(prompt_tokens=n_tokens, total_tokens=n_tokens))


def _base64(vecs: list[list[float]]) -> list[str]:
    """Little-endian float32, as the openai client decodes it (it asks for base64 by default)."""
    import base64

    import numpy as np

    return [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vecs]
