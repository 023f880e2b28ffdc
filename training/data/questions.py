"""Questions as people ask them: section numbers stripped from headings, paraphrases made by rules in
English and Chinese, and the check that an answer does more than repeat its question.

A document's heading reads "3.1.3. The stable distributions really contains outdated packages. Why is
it so?"; a customer types "why are stable packages so old". Training on the heading verbatim teaches
the model a register nobody uses (and to echo it back), so every question is cleaned, and each gets
`n` paraphrases: from the teacher when one is configured (training/data/teacher.py), otherwise from the
rules below: a question form rewritten (how can I → how do I / what's the best way to; 如何 → 怎么;
什么是X → X是什么), a register change (a greeting, "quick question:", 请问, 想问一下), or the way people
type into a chat box (lower case, no question mark). Paraphrases are deterministic: the same question
gives the same variants on every build.
"""

from __future__ import annotations

import hashlib
import re

_NUMBERING = re.compile(
    r"^\s*(?:"
    r"(?:chapter|section|part|appendix)\s+[\dIVXLC]+(?:\.\d+)*[.:]?"  # Chapter 3. / Appendix A:
    r"|第\s*[\d一二三四五六七八九十百千]+\s*[章节条部篇]"  # 第 3 章
    r"|[QA]\s*\d+\s*[.:：)]|[A-Z](?:\.\d+)+\.?"  # Q12: / A.1.
    r"|\d+(?:\.\d+)*\.(?!\d)|\d+(?:\.\d+)+"  # 3.1.3. / 3.1 / 3. (not "2026 plans", "3.5")
    r"|[(（]?[\da-zA-Z一二三四五六七八九十][)）]"  # (a) / 1) / （一）
    r"|[一二三四五六七八九十]+[、.]"  # 一、
    r")\s*",
    re.IGNORECASE,
)
_DECORATION = re.compile(r"^[#*_\s]+|[#*_¶§\s]+$")


def clean_question(text: str) -> str:
    """A heading as a customer would type it: section numbering ("3.1.3.", "Q12:", "第 3 章", "(a)"),
    markdown emphasis and trailing anchors (¶, #) removed, whitespace collapsed. Numbers inside the
    question ("Can I get a refund within 30 days?") are kept."""
    q = _DECORATION.sub("", text.strip())
    for _ in range(3):  # "Chapter 3. 3.1. ..." carries more than one
        stripped = _NUMBERING.sub("", q, count=1)
        if stripped == q or not stripped.strip():
            break
        q = _DECORATION.sub("", stripped)
    return re.sub(r"\s+", " ", q).strip()


_ASKS_EN = re.compile(
    r"^(?:(?:how|what|why|when|where|which|who)\s+(?:can|do|does|did|is|are|was|should|must|may|will|would|could)"
    r"|(?:can|could|do|does|is|are|should|must|may|will|would)\s+(?:i|you|we|they|it|my|a|an|the|this|there)"
    r")\b", re.IGNORECASE)
_ASKS_ZH = re.compile(r"[吗呢][？?]?$|为什么|是否|是不是|能不能|可不可以")


def asks(text: str) -> bool:
    """Whether a heading is a question even without its question mark ("How can I keep a log of the
    packages I add", "为什么要这样做"); a topic ("How returns work", "如何退货") is not."""
    t = text.strip()
    return t.endswith(("?", "？")) or bool(_ASKS_EN.match(t) or _ASKS_ZH.search(t))


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() else s  # keep "DNS", "I"


def _chat_typed(q: str) -> str:
    return q.rstrip("?").rstrip().lower()


_EN_FORMS: list[tuple[re.Pattern, list[str]]] = [
    (re.compile(r"^How (?:can|do|should|would|could) (?:I|you|we|one) (?P<x>.+?)\?$", re.I),
     ["How do I {x}?", "What's the best way to {x}?", "Is there a way to {x}?", "Can you tell me how to {x}?"]),
    (re.compile(r"^What (?:is|are) (?P<x>(?:a|an|the) .+?|[A-Z\"'].+?)\?$"),
     ["What's {x}?", "Can you explain {x}?", "Tell me about {x}."]),
    (re.compile(r"^Where (?:can|do|should) I (?P<x>.+?)\?$", re.I),
     ["Where do I {x}?", "Where should I go to {x}?"]),
    (re.compile(r"^(?:Can|Could|May) I (?P<x>.+?)\?$", re.I),
     ["Is it possible to {x}?", "Am I allowed to {x}?", "Is it OK to {x}?"]),
    (re.compile(r"^Why (?P<x>.+?)\?$", re.I), ["Any idea why {x}?", "Do you know why {x}?"]),
]
_EN_REGISTER = ["Quick question: {l}", "Hi, {l}", "{q} Thanks!", "Hello! {q}"]

_ZH_SWAPS = [("如何", "怎么"), ("怎样", "怎么"), ("为什么", "为啥"), ("是否", "是不是"), ("哪些", "哪几个"),
             ("可以", "能"), ("能否", "能不能"), ("什么时候", "啥时候")]
_ZH_FORMS: list[tuple[re.Pattern, list[str]]] = [
    (re.compile(r"^什么是(?P<x>.+?)[？?]$"), ["{x}是什么？", "{x}指的是什么？", "能解释一下{x}吗？"]),
    (re.compile(r"^(?:我)?(?:如何|怎样|怎么)(?P<x>.+?)[？?]$"), ["请问怎么{x}？", "{x}要怎么做？", "想{x}，该怎么办？"]),
    (re.compile(r"^(?:我)?(?:可以|能)(?P<x>.+?)吗[？?]$"), ["能不能{x}？", "{x}可以吗？"]),
]
_ZH_REGISTER = ["请问，{q}", "你好，想问一下：{q}", "{q}谢谢！"]


def _en_variants(q: str) -> list[str]:
    out = []
    for pattern, templates in _EN_FORMS:
        m = pattern.match(q)
        if m:
            x = m["x"].strip()
            out += [t.format(x=x) for t in templates]
            break
    out += [t.format(q=q, l=_lower_first(q)) for t in _EN_REGISTER]
    out.append(_chat_typed(q))
    return out


def _zh_variants(q: str) -> list[str]:
    out = []
    for pattern, templates in _ZH_FORMS:
        m = pattern.match(q)
        if m:
            out += [t.format(x=m["x"].strip()) for t in templates]
            break
    for a, b in _ZH_SWAPS:
        if a in q:
            out.append(q.replace(a, b, 1))
    out += [t.format(q=q) for t in _ZH_REGISTER]
    out.append(q.rstrip("？?"))
    return out


def _rank(question: str, variant: str) -> str:
    return hashlib.sha256(f"{question}\x00{variant}".encode()).hexdigest()


def paraphrases(question: str, language: str, n: int) -> list[str]:
    """Up to `n` rule-made rewordings of `question` (already cleaned), none equal to it or to each
    other, the same on every call. Form rewrites come first (they change the words), register and typing
    changes fill the rest.

    Args:
        language: "zh" for the Chinese rules, anything else for the English ones.
    """
    if n <= 0 or not question.strip():
        return []
    candidates = _zh_variants(question) if language == "zh" else _en_variants(question)
    seen, forms, other = {_key(question)}, [], []
    n_forms = sum(1 for p, t in (_ZH_FORMS if language == "zh" else _EN_FORMS) if p.match(question) for _ in t)
    for i, c in enumerate(candidates):
        c = c.strip()
        if c and _key(c) not in seen:
            seen.add(_key(c))
            (forms if i < n_forms else other).append(c)
    forms.sort(key=lambda v: _rank(question, v))
    other.sort(key=lambda v: _rank(question, v))
    return (forms + other)[:n]


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).lower()


def _units(text: str) -> list[str]:
    """Words for Latin text, characters for CJK: what overlap is counted in."""
    return re.findall(r"[\u4e00-\u9fff]|[A-Za-z0-9]+", text.lower())


def restates(question: str, answer: str) -> bool:
    """Whether `answer` only repeats its question: it is empty, a question of about the question's
    length, or mostly the question's own words (70 %+) with fewer than 5 words or characters of its own.
    A short real answer ("Yes, always.") is not a restatement."""
    a = answer.strip()
    if not a:
        return True
    a_units = _units(a)
    if a.endswith(("?", "？")) and len(a_units) <= 2 * max(len(_units(question)), 1):
        return True
    q_units = set(_units(question))
    new = [u for u in a_units if u not in q_units]
    return bool(a_units) and (len(a_units) - len(new)) / len(a_units) >= 0.7 and len(new) < 5
