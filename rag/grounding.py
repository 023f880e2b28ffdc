"""Is an answer grounded in its context? A lexical check that works the same in English and Chinese.

    support("Refunds take 10 working days.", chunk)          # 0.0 .. 1.0
    is_grounded(answer, chunk, quotes=["refunds reach your card within 10 working days"])

Why lexical and not a model: it runs wherever data is built (no GPU, no second model to download or
trust), it is deterministic, and what it flags is easy to show a person. It answers a narrow question
well: does the answer say things the context does not contain? It cannot tell a paraphrase that
changes the meaning from one that keeps it, so it is a filter for invented content, not a judge of
correctness.

Two kinds of evidence, either of which is enough:

- quotes: passages the answer claims to copy from the context (RAFT's ##begin_quote## ... ##end_quote##).
  They must all occur in the context, compared as lower-case letters and digits only, so case,
  whitespace, punctuation and full-/half-width changes do not matter.
- support: the share of the answer's content tokens that occur in the context. English (and other
  spaced scripts) contributes words and numbers, stop words removed; Chinese, which has no spaces,
  contributes character bigrams ("工作日内" -> 工作, 作日, 日内), so no segmenter is needed and a
  bigram missing from the context is a fair sign of invented content.

An empty answer or a refusal ("I cannot answer ...", "无法根据内容回答") is never grounded: there is nothing
in it to support. Used by the teacher (training/data/teacher.py) to drop invented answers, and by
evaluation (evaluation/metrics/retrieval.py) as a faithfulness score of a model's answer against the
chunk it cites. It lives in `rag`, at the bottom of the dependency graph, so both can import it
(evaluation may not import training).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

MIN_SUPPORT = 0.6
"""Default share of content tokens that must occur in the context when the quotes do not settle it."""
MIN_QUOTE_CHARS = 4
"""A quote shorter than this (letters and digits) proves nothing: two characters occur almost anywhere."""

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9]+(?:[.,:][0-9]+)*")  # 5.95, 1,000 and 10:30 stay one token
_EN_STOP = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being it its this that "
    "these those there their they them you your we our us he she his her i me my not no yes do does did can "
    "could should would will may might must have has had than then so such which who whom what when where why "
    "how all any each about into over under after before also only just more most very".split()
)
_REFUSAL = re.compile(
    r"\b(?:cannot|can ?not|can't|unable to) (?:be )?(?:answer|determine|find)|\bnot (?:mentioned|stated|specified)"
    r"|\bdoes(?:n't| not) (?:say|mention|specify|contain|provide)|\bno information\b|\bnot enough information"
    r"|\bi don'?t know\b|无法(?:根据|回答|确定|判断)|没有(?:提到|提及|相关信息|说明)|未(?:提及|提到|说明)|不知道",
    re.I,
)


def normalise(text: str) -> str:
    """Lower-case letters and digits only (NFKC first): quotes match across whitespace, punctuation and
    width changes ("Ｗｉｔｈｉｎ 10 working-days," and "within 10 working days" both give "within10workingdays")."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if unicodedata.category(c)[0] in "LN")


def content_tokens(text: str) -> set[str]:
    """The tokens support is counted in: English words (stop words and single letters removed) and
    numbers; for each run of Chinese characters its character bigrams (a lone character counts as itself)."""
    text = unicodedata.normalize("NFKC", text).lower()
    tokens = {w for w in _WORD.findall(text) if w not in _EN_STOP and (len(w) > 1 or w.isdigit())}
    for run in _CJK_RUN.findall(text):
        if len(run) == 1:
            tokens.add(run)
        else:
            tokens.update(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


def support(answer: str, context: str) -> float:
    """How much of the answer the context supports: the share of the answer's distinct content tokens
    (English words and numbers, Chinese character bigrams; see `content_tokens`) that also occur in the
    context. 1.0 means every content word of the answer is in the context; 0.0 means none is, or the
    answer has no content tokens at all (empty, only stop words or punctuation).

    English: support("Within 10 working days, to your card.", "Refunds reach your card within 10
    working days.") == 1.0 (within, 10, working, days, card). Chinese: support("需要 45 天，以支票寄出。",
    "退款会在 5 至 10 个工作日内退回。") == 0.0 (45, 需要, 支票, ... are all missing).

    It measures precision only: an answer that says little but true scores high. Pair it with a
    relevance or correctness check when scoring a model.
    """
    return _share(content_tokens(answer), context)


def _share(tokens: set[str], context: str) -> float:
    return len(tokens & content_tokens(context)) / len(tokens) if tokens else 0.0


def quotes_found(quotes: Sequence[str], context: str) -> bool:
    """True when there is at least one quote and every quote occurs in the context, compared with
    `normalise` (case, whitespace, punctuation and width ignored) and at least MIN_QUOTE_CHARS long
    after that. One invented or too-short quote makes all of them count for nothing."""
    if not quotes:
        return False
    normed = [normalise(q) for q in quotes]
    context_norm = normalise(context)
    return all(len(q) >= MIN_QUOTE_CHARS and q in context_norm for q in normed)


def is_refusal(answer: str) -> bool:
    """True when the answer says the context does not answer the question, in English or Chinese
    ("I cannot answer ...", "The context does not mention ...", "无法根据内容回答", "没有提到")."""
    return bool(_REFUSAL.search(answer))


def check_grounded(
    answer: str, quotes: Sequence[str], context: str, min_support: float = MIN_SUPPORT
) -> tuple[str | None, float]:
    """Why the answer is not grounded in the context, or None when it is, with its `support`.

    Reasons, checked in this order: 'empty-answer' (blank), 'cannot-answer' (`is_refusal`),
    'not-grounded' (neither do all quotes occur in the context, nor is support >= min_support).

    Returns:
        (reason or None, support); support is computed whatever the verdict, for reports.
    """
    tokens = content_tokens(answer)
    score = _share(tokens, context)
    if not answer.strip():
        return "empty-answer", score
    if is_refusal(answer):
        return "cannot-answer", score
    if quotes_found(quotes, context):
        return None, score
    if tokens and score >= min_support:
        return None, score
    return "not-grounded", score


def is_grounded(answer: str, context: str, quotes: Sequence[str] = (), min_support: float = MIN_SUPPORT) -> bool:
    """True when the answer is grounded in the context: it is not empty, not a refusal, and either all
    its quotes occur in the context or at least `min_support` of its content tokens do (`support`).

    Works on English and Chinese (and mixed) text alike: English is compared by words and numbers,
    Chinese by character bigrams, so "检验后 10 个工作日内退回。" is grounded in "退款会在检验后 5 至 10 个
    工作日内退回。" and "需要 45 天，以支票寄出。" is not.

    Args:
        answer: the text to check, e.g. a model's answer (without its reasoning).
        context: the text it must be supported by (a chunk, or retrieved chunks joined).
        quotes: passages the answer claims to copy from the context; may be empty.
        min_support: share of content tokens needed when the quotes do not settle it, in [0, 1].
    """
    return check_grounded(answer, quotes, context, min_support)[0] is None
