"""Retrieval for a chat request: the one code path by which the server, and the evaluation that judges
it, put retrieved chunks into a prompt (the layout the model was trained on, `rag.build_rag_messages`)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from rag import Retriever, build_rag_messages
from rag.prompt import BUILT_IN, Prompts
from rag.retrieval import Hit


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
