"""Answers that answer: a section's text cut to the part that answers its question, never mid-sentence,
and pairs dropped whose answer only repeats the question.

A FAQ section often runs to 300+ tokens (the Debian FAQ's longest rule-made answer had 3,447): trained on
those, a model learns to recite whole sections, and the answer crowds the retrieved context out of the
training length. With a teacher configured, a rule-made answer over SHORT_ENOUGH tokens is replaced by
the teacher's answer to its question from that text (its RAFT-style answer prompt), when that answer is
grounded in the text (rag/grounding.py) and shorter; otherwise, and without a teacher, the answer keeps its
first paragraphs up to a token budget; when even the first paragraph is longer, its first sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from training.data.questions import restates

ANSWER_TOKENS = 256
"""Default budget for a rule-made answer, in the target model's tokens."""
SHORT_ENOUGH = 48
"""A rule-made answer within this many tokens is to the point already: the teacher is not asked to shorten it."""

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|(?<=[。！？])")


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def trim_answer(answer: str, count_tokens: Callable[[str], int], budget: int = ANSWER_TOKENS) -> str:
    """`answer` cut to whole paragraphs within `budget` tokens; when the first paragraph alone is over,
    its whole sentences within the budget (at least the first sentence, whatever its length)."""
    if count_tokens(answer) <= budget:
        return answer.strip()
    paras = _paragraphs(answer)
    kept: list[str] = []
    for p in paras:
        if kept and count_tokens("\n\n".join([*kept, p])) > budget:
            break
        kept.append(p)
    if count_tokens("\n\n".join(kept)) <= budget:
        return "\n\n".join(kept)
    sentences = [s for s in _SENTENCE.split(paras[0]) if s.strip()]
    out = sentences[0].strip()
    joiner = "" if re.search(r"[\u4e00-\u9fff]", paras[0]) else " "
    for s in sentences[1:]:
        longer = f"{out}{joiner}{s.strip()}"
        if count_tokens(longer) > budget:
            break
        out = longer
    return out


@dataclass
class Shaped:
    """What `shape_answers` did to a list of pairs."""

    trimmed: int = 0
    dropped_restating: int = 0
    examples: list = field(default_factory=list, repr=False)


def shape_answers(seeds: list, count_tokens: Callable[[str], int], budget: int = ANSWER_TOKENS) -> Shaped:
    """Trim each rule-made seed's answer (teacher answers are kept: the teacher already answers to the
    point) and drop the seeds whose answer only restates the question. Seeds are changed in place."""
    out = Shaped()
    for s in seeds:
        if not s.rule.startswith("teacher:"):
            short = trim_answer(s.answer, count_tokens, budget)
            out.trimmed += short != s.answer.strip()
            s.answer = short
        if restates(s.question, s.answer):
            out.dropped_restating += 1
            continue
        out.examples.append(s)
    return out


def teacher_answers(seeds: list, teacher, cache_path: Path, count_tokens: Callable[[str], int],
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Each rule-made seed's answer over SHORT_ENOUGH tokens replaced, in place, by the teacher's answer to
    its question from that text, when grounded in it and shorter; replies cached (training/data/llm_cache.py).
    Returns the counts for stats.json: asked, from_cache, requests, shortened, kept (left to `trim_answer`)."""
    from rag.grounding import check_grounded
    from training.data.llm_cache import ask_all
    from training.data.teacher import load_prompt, render
    from training.data.teacher_parse import parse_answer

    long = [s for s in seeds if not s.rule.startswith("teacher:") and count_tokens(s.answer) > SHORT_ENOUGH]
    if not long:
        return {"asked": 0, "shortened": 0}
    prompts = [render(load_prompt("answer", s.doc.language), context=s.answer, question=s.question) for s in long]
    replies, counts = ask_all(prompts, cache_path=cache_path, teacher=teacher, progress=progress)
    shortened = 0
    for s, reply in zip(long, replies, strict=True):
        _, quotes, answer = parse_answer(reply)
        why, _ = check_grounded(answer, quotes, s.answer, teacher.min_support)
        if why is None and answer and count_tokens(answer) < count_tokens(s.answer):
            s.answer = answer
            shortened += 1
    return {**counts, "shortened": shortened, "kept": len(long) - shortened}
