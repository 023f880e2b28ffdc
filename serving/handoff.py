"""When the bot should hand the customer over to a person (the `handoff` of POST /chat), in English and Chinese:

- the customer asks for one ("can I talk to a human", "转人工");
- retrieval found nothing relevant: no retrieved chunk's embedding cosine reaches `handoff_min_cosine`, or, for a
  question in a language the embedding model does not cover, BM25 matched no word of the documents;
- the answer declines (it says the prompts' decline, the sentence the model was trained to say), or is blank.
"""

from __future__ import annotations

import re
import unicodedata

from rag.prompt import Prompts
from rag.retrieval import Hit

MIN_COSINE = {"all-MiniLM-L6-v2": 0.45, "multilingual-e5-small": 0.87}
"""The best-cosine line between "the documents answer this" and "they hold nothing on it", per embedding model
(`handoff_min_cosine` overrides), measured on the Debian FAQ's held-out questions (bench/handoff_threshold.py,
bench/RESULTS.md). MiniLM: answerable English questions 0.62-0.89, out-of-domain 0.06-0.34 (Chinese: no dense
scores). multilingual-e5-small compresses every cosine into 0.75-0.96: answerable 0.89-0.95, out-of-domain
0.76-0.86, in English and in Chinese alike; 0.87 is the middle of the gap."""

ASK_FOR_PERSON = (
    "a human", "human agent", "live agent", "real person", "a person", "representative", "operator",
    "talk to someone", "speak to someone", "customer service", "人工", "真人", "客服", "工作人员",
)
"""Built in; `handoff_phrases` (settings) replaces them."""


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def asks_for_person(message: str, phrases: tuple[str, ...] | list[str] = ASK_FOR_PERSON) -> str | None:
    """The phrase with which `message` asks for a person, or None (English phrases as whole words)."""
    text = _norm(message)
    for p in phrases:
        q = _norm(p)
        if re.search(r"[\u3400-\u9fff]", q):
            if q in text:
                return p
        elif re.search(rf"(?<!\w){re.escape(q)}(?!\w)", text):
            return p
    return None


def min_cosine_for(embedder: str, given: float | None) -> float | None:
    """The handoff line for an index embedded by `embedder`: `given` (the setting), else MIN_COSINE's, else
    None (an embedding model nobody measured: only the BM25 rule applies)."""
    return given if given is not None else MIN_COSINE.get(embedder)


def nothing_relevant(hits: list[Hit], min_cosine: float | None) -> bool:
    """Whether retrieval found nothing a person would call relevant (see the module's docstring); `min_cosine`
    None: by BM25 alone."""
    if not hits:
        return True
    dense = [h.metadata["dense_score"] for h in hits if "dense_score" in h.metadata]
    if dense and min_cosine is not None:
        return max(dense) < min_cosine
    return not any(h.metadata.get("bm25_score", 0) > 0 for h in hits)


def declines(answer: str, prompts: Prompts) -> bool:
    """Whether `answer` is (or begins with) one of the prompts' declines."""
    said = re.sub(r"\W+", "", _norm(answer))
    for decline in prompts.decline.values():
        head = re.sub(r"\W+", "", _norm(decline))[:24]
        if head and head in said:
            return True
    return False


def handoff_reason(message: str, hits: list[Hit] | None, answer: str, prompts: Prompts, min_cosine: float | None,
                   phrases: tuple[str, ...] | list[str] = ASK_FOR_PERSON) -> str | None:
    """Why the conversation should go to a person, or None. `hits` None: the server retrieves nothing."""
    if (p := asks_for_person(message, phrases)) is not None:
        return f"the customer asked for a person ({p!r})"
    if hits is not None and nothing_relevant(hits, min_cosine):
        return "the documents hold nothing relevant to the question"
    if not answer.strip():
        return "the model gave no answer"
    if declines(answer, prompts):
        return "the answer declines"
    return None
