"""Retrieval for a chat request: the one code path by which the server, and the evaluation that judges
it, put retrieved chunks into a prompt (the layout the model was trained on, `rag.build_rag_messages`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from rag import Retriever, build_rag_messages, hyde
from rag.prompt import BUILT_IN, Prompts
from rag.retrieval import Hit
from serving.engines.base import Engine, SamplingParams


async def with_context(messages: list[dict], retriever: Retriever | None, k: int,
                       prompts: Prompts = BUILT_IN) -> tuple[list[dict], list[Hit]]:
    """`messages` with the `k` chunks retrieved for the last user message in the system prompt (`prompts`' in the
    question's language, unless the messages bring their own), and those chunks (best first); `messages`
    unchanged and no chunks when `retriever` is None or `k` is 0."""
    # the last user message: after a tool call the conversation ends with the tool's result, not a question
    query = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
    if retriever is None or k == 0 or query is None:
        return [dict(m) for m in messages], []
    hits = await run_in_threadpool(retriever.search, query, k)
    return build_rag_messages(messages, hits, prompts=prompts), hits


def hyde_writer(engine: Engine) -> hyde.Writer:
    """The served model writing the retriever's hypothetical answers (`query_expansion` hyde): greedy, short, through
    the engine's queue like any request. Called by `Retriever.search` in the threads retrieval runs in."""
    import anyio.from_thread

    def write(messages: list[dict]) -> str:
        return anyio.from_thread.run(engine.generate, messages, SamplingParams(max_new_tokens=hyde.MAX_TOKENS)).text

    return write
