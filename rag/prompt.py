"""The RAG prompt layout. Serving builds every request with it and dataset building (RAFT) builds
every training example with it, so a model is trained on exactly what it will see when served."""

from __future__ import annotations

from collections.abc import Sequence

from rag.retrieval import Hit

DEFAULT_K = 3
"""Chunks retrieved per question, for serving and for training data alike: a model trained on
prompts with k chunks should be served prompts with k chunks."""

PROMPT_LAYOUT = "system-context-v1"
"""Version of the layout below (system message, then `Context:` and numbered `[i] source — section`
chunks). Recorded in every dataset and model card; change it whenever the layout changes, so a model
trained on the old layout is known to be served a different one."""

DEFAULT_SYSTEM = "You are a helpful assistant for our company. Answer from the context when it is relevant."


def format_context(hits: Sequence[Hit]) -> str:
    """Number the hits [1]..[n] with their source so answers can cite them."""
    parts = []
    for i, h in enumerate(hits, 1):
        where = f"{h.source} — {h.heading_path}" if h.heading_path else h.source
        parts.append(f"[{i}] {where}\n{h.text.strip()}")
    return "\n\n".join(parts)


CONTEXT_MARK = "\n\nContext:\n"


def strip_context(system: str) -> str:
    """A system prompt without the retrieved context `build_rag_messages` appended to it."""
    return system.split(CONTEXT_MARK, 1)[0]


def build_rag_messages(
    messages: Sequence[dict], hits: Sequence[Hit], system: str = DEFAULT_SYSTEM
) -> list[dict]:
    """Return chat messages with the retrieved context in the system message.

    Args:
        messages: the conversation so far (OpenAI-style dicts with role/content); a system message
            in it replaces `system`.
        hits: retrieved chunks, best first.
    """
    msgs = [dict(m) for m in messages]
    if msgs and msgs[0]["role"] == "system":
        system = msgs.pop(0)["content"]
    if hits:
        system = f"{system}{CONTEXT_MARK}{format_context(hits)}"
    return [{"role": "system", "content": system}, *msgs]
