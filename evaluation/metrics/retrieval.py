"""Retrieval and citations: did the retriever find the source chunk, and does the cited chunk support the answer?

    hit_at_k(["c7", "c2", "c9"], "c2", k=3)      # 1.0: the source chunk is among the first 3
    reciprocal_rank(["c7", "c2", "c9"], "c2")    # 0.5: it came second
    citation_support(answer, chunk_text)         # 0.0 .. 1.0, rag.grounding.support

All scores are in [0, 1], higher is better.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.grounding import is_refusal, support

_CITATION = re.compile(r"\[(\d{1,3})\]")
"""How answers cite the numbered context chunks ([1], [2], ... as `rag.prompt.format_context` numbers them)."""


def hit_at_k(retrieved_ids: Sequence[str], source_id: str, k: int) -> float:
    """1.0 when the source chunk is among the first k retrieved ids, else 0.0. Its mean over questions
    is the hit rate (recall@k with one relevant chunk per question).

    Raises:
        ValueError: k < 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    return float(source_id in list(retrieved_ids)[:k])


def reciprocal_rank(retrieved_ids: Sequence[str], source_id: str) -> float:
    """1 / rank of the source chunk in the retrieved ids (1.0 first, 0.5 second, ...), 0.0 when absent."""
    ids = list(retrieved_ids)
    return 1.0 / (ids.index(source_id) + 1) if source_id in ids else 0.0


def mrr(rankings: Sequence[Sequence[str]], source_ids: Sequence[str]) -> float:
    """Mean reciprocal rank over questions: the mean of `reciprocal_rank`, in [0, 1].

    Args:
        rankings: per question, the retrieved chunk ids, best first.
        source_ids: per question, the id of the chunk the question was written from.

    Raises:
        ValueError: the lists differ in length, or are empty.
    """
    if len(rankings) != len(source_ids) or not rankings:
        raise ValueError(f"need one ranking per source id, got {len(rankings)} rankings for {len(source_ids)} ids")
    return sum(reciprocal_rank(r, s) for r, s in zip(rankings, source_ids, strict=True)) / len(rankings)


def cited_numbers(answer: str) -> list[int]:
    """The context chunks an answer cites, as the numbers in its [1]-style markers, in order, each once."""
    return list(dict.fromkeys(int(n) for n in _CITATION.findall(answer)))


def citation_support(answer: str, cited_chunk_text: str) -> float:
    """Faithfulness of an answer to the chunk it cites: `rag.grounding.support`, the share of the answer's
    content words (Chinese: character bigrams) that occur in the chunk, after removing [n] markers.

    In [0, 1]: near 1 when everything the answer says is in the chunk, near 0 when it is invented or
    the chunk is about something else. 0.0 for a refusal or an empty answer (nothing is supported).
    Lexical, so a paraphrase scores lower than a quote; it measures precision only (see `support`).
    """
    text = _CITATION.sub(" ", answer)
    if not text.strip() or is_refusal(text):
        return 0.0
    return support(text, cited_chunk_text)
