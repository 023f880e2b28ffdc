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


def nothing_relevant(hits: list[Hit], min_cosine: float) -> bool:
    """Whether retrieval found nothing a person would call relevant (see the module's docstring)."""
    if not hits:
        return True
    dense = [h.metadata["dense_score"] for h in hits if "dense_score" in h.metadata]
    if dense:
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


def handoff_reason(message: str, hits: list[Hit] | None, answer: str, prompts: Prompts, min_cosine: float,
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
