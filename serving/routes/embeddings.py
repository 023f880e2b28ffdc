"""POST /v1/embeddings: the retriever's embedding model (all-MiniLM-L6-v2 by default), so clients and
other Onboard instances (`RagConfig.embedding_url`) embed exactly as this index does."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from serving.auth import charge
from serving.conformance import valid_unicode
from serving.deps import EmbedderDep
from serving.errors import BadRequest, UnknownModel, Unsupported
from serving.metrics import observe
from serving.openapi import errors
from serving.protocol import EmbeddingData, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage

router = APIRouter(prefix="/v1", tags=["embeddings"])


@router.post("/embeddings", responses=errors(400, 404, 413, 502))
async def embeddings(req: EmbeddingRequest, request: Request, embedder: EmbedderDep) -> EmbeddingResponse:
    if req.model != embedder.name:
        raise UnknownModel(f"embedding model {req.model!r} is not served here; this server embeds with "
                           f"{embedder.name!r}.")
    texts, n_tokens = await run_in_threadpool(_texts, req.input, embedder)
    vecs = await run_in_threadpool(embedder.embed, texts)
    charge(request, n_tokens)
    observe(request, embedded=n_tokens)
    if req.dimensions is not None and req.dimensions != len(vecs[0]):
        raise Unsupported(f"dimensions: {embedder.name} embeds in {len(vecs[0])} dimensions and cannot shorten "
                          f"them to {req.dimensions}; leave dimensions out.", "dimensions")
    data = _base64(vecs) if req.encoding_format == "base64" else vecs
    return EmbeddingResponse(data=[EmbeddingData(index=i, embedding=e) for i, e in enumerate(data)],
                             model=embedder.name, usage=EmbeddingUsage(prompt_tokens=n_tokens, total_tokens=n_tokens))


def _texts(given, embedder) -> tuple[list[str], int]:
    """The texts to embed and their token count: strings as they are, token arrays decoded with the
    embedding model's tokenizer (the ids a client got from that tokenizer).

    Raises:
        BadRequest: empty input, more than 2,048 inputs, an empty one, or an id outside the vocabulary.
        Unsupported: token arrays for an embedding model served from elsewhere (its tokenizer is not here).
    """
    items = [given] if isinstance(given, str) or (given and isinstance(given[0], int)) else given
    if not 0 < len(items) <= 2048 or any(len(x) == 0 for x in items):
        raise BadRequest("input: 1 to 2048 inputs, none empty.", "input")
    if isinstance(items[0], str):
        items = [valid_unicode(t, "input" if isinstance(given, str) else f"input[{i}]") for i, t in enumerate(items)]
        return items, sum(embedder.count_tokens(t) for t in items)
    tokenizer = getattr(embedder, "tokenizer", None)
    if tokenizer is None:
        raise Unsupported(f"input: token arrays cannot be read for {embedder.name}, which is embedded elsewhere "
                          "(ONBOARD_EMBEDDING_URL); send text.", "input")
    vocab = len(tokenizer)
    for i, ids in enumerate(items):
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise BadRequest(f"input[{i}]: token id {bad} is outside {embedder.name}'s vocabulary (0 to {vocab - 1}); "
                             "token arrays are read with the embedding model's own tokenizer.", "input")
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in items], sum(len(ids) for ids in items)


def _base64(vecs: list[list[float]]) -> list[str]:
    """Little-endian float32, as the openai client decodes it (it asks for base64 by default)."""
    import base64

    import numpy as np

    return [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vecs]
