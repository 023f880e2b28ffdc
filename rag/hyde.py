"""Query expansion by a hypothetical answer (HyDE, Gao et al. 2022): a model writes a short passage that answers
the question as the documents might; the passage finds documents in their own words where the question's words
differ ("钱什么时候能退回到我的卡上？" -> "退款将在 5 至 10 个工作日内退回原支付方式").

The retriever fuses four rankings: the question's and the question-plus-passage's, each by embedding (the mean of
the two vectors) and by BM25. Measured on the Debian FAQ benchmark (bench/query_expansion.py, bench/RESULTS.md):
recall@1 and MRR up in both languages, within the benchmark's noise, for a generation per question (seconds on a
CPU): an option, off by default.
"""

from __future__ import annotations

from collections.abc import Callable

from rag.loaders import detect_language

Writer = Callable[[list[dict]], str]
"""Chat messages -> the model's answer (the server passes its engine)."""

MAX_TOKENS = 64
"""Tokens of the hypothetical passage: two or three sentences."""

PROMPTS = {
    "en": "Write a short passage (two or three sentences) that answers the question, as the product's documentation "
          "would. Answer directly, without saying you are unsure.",
    "zh": "写一段简短的文字（两三句话）回答这个问题，就像产品文档里写的那样。直接回答，不要说你不确定。",
}


def messages(query: str) -> list[dict]:
    """What the model is asked, in the question's language."""
    lang = "zh" if detect_language(query) == "zh" else "en"
    return [{"role": "system", "content": PROMPTS[lang]}, {"role": "user", "content": query}]
