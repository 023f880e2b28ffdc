"""Key facts: what a correct answer must state, taken from the reference answer by rules, kept exact.

    key_facts("Refunds arrive within 5 business days; shipping over $75 is free.")
    # -> ["5 business days", "$75"]
    fact_recall("You get your money back in 7 days.", ["5 business days"])   # -> 0.0

A fact is one of (each a verbatim piece of the reference):

- a number with what it counts: "5 business days", "$75", "14:00", "15%", "30 天", "3 个工作日",
  "75 美元", "March 15, 2024", ranges ("5 to 10 days"), phone numbers, other numbers in digits
  (`evaluation.metrics.quantities` has the rules);
- an email address or a URL;
- a quoted name ("Onboard Pro", “七天无理由退货”, 《用户协议》): the text inside the quotes;
- a proper name: in English, capitalised words ("Customer Care Team", a capitalised word in mid
  sentence such as "Visa", "PayPal", "DHL"); in Chinese text, every run of Latin letters ("PayPal", "App").

Why rules and not a model: a fact missed or invented by a rule can be shown and fixed, and the same
reference always gives the same facts. What the rules cannot see, a fact stated only in words
("refunds are not possible"), is left to token F1 and the optional judge.

Whether an answer states a fact: numbers compare by value and unit family after normalising
(`quantities`), so "$75" is stated by "75 dollars" and "75 美元", "5 business days" by "five working
days" and "5 个工作日", but not by "7 business days" nor by "5 days"; everything else compares as
lower-case letters and digits (case, spaces, punctuation and width ignored), as a substring.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from evaluation.metrics.quantities import quantities, quantity_keys
from rag.grounding import normalise
from rag.loaders import detect_language

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'，。、）)\]]+")
_QUOTED = re.compile(r"\"([^\"\n]{2,60})\"|“([^”\n]{2,60})”|「([^」\n]{2,60})」|『([^』\n]{2,60})』|《([^》\n]{2,60})》")
_NAME_WORD = r"(?:[A-Z][A-Za-z0-9&'’-]*[A-Za-z0-9]|[A-Z]|[a-z]+[A-Z][A-Za-z0-9]*)"
_NAME = re.compile(rf"\b{_NAME_WORD}(?:\s+(?:(?:of|the|for|de|&)\s+)?{_NAME_WORD})*\b")
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z0-9&+'’._-]*[A-Za-z0-9]+(?:\s+[A-Za-z][A-Za-z0-9&+'’._-]*[A-Za-z0-9])*")
_LEADING_STOP = frozenset(
    "a an the our your my their his her its this that these those we you they it i if when where please all "
    "each every any some no yes and or but so for with from to in on at by of as is are was do does can".split()
)
_INITIAL_VERBS = frozenset(
    "contact call email visit use go open click select choose see check send ask pay log sign read write tap "
    "enter find".split()
)
"""Imperatives that start a sentence before a name ("Contact Customer Care"): not part of the name."""
_SENTENCE_END = set(".!?:;\n。！？：；")


def key_facts(reference: str, source: str | None = None) -> list[str]:
    """The facts a correct answer must state, in the order they occur in the reference, each once.

    Args:
        reference: the reference answer; every fact is a verbatim piece of it.
        source: the chunk the reference was written from, optional. It only confirms names: a
            capitalised word that starts a sentence of the reference ("Visa is accepted.") counts as a
            name when the source capitalises it in mid sentence. Facts come from the reference alone,
            because a chunk says much more than one answer needs.

    Returns:
        Fact strings; [] when the reference states none (then `fact_recall` has nothing to check).
    """
    confirmed = _mid_sentence_capitals(source) if source else set()
    exact = [(m.start(), m.end(), m.group(0).rstrip(".,;:!?")) for p in (_EMAIL, _URL) for m in p.finditer(reference)]
    numbers = [(q.start, q.end, reference[q.start : q.end]) for q in quantities(reference)]
    quoted = [(m.start(), m.end(), next(g for g in m.groups() if g).strip()) for m in _QUOTED.finditer(reference)]
    names = _names(reference, confirmed)
    kept: list[tuple[int, int, str]] = []
    # Exact forms first (a URL's digits are not a number), then quoted names (“七天无理由退货” is a name, not 7 days).
    for tier in (exact, quoted, numbers, names):
        for start, end, text in sorted(tier, key=lambda c: (c[0] - c[1], c[0])):
            if normalise(text) and all(end <= s or start >= e for s, e, _ in kept):
                kept.append((start, end, text))
    facts, seen = [], set()
    for _, _, text in sorted(kept):
        key = _fact_key(text) or normalise(text)
        if key not in seen:
            seen.add(key)
            facts.append(text)
    return facts


def fact_recall(answer: str, facts: Sequence[str]) -> float:
    """The share of the facts the answer states (see the module docstring for "states"), in [0, 1].

    1.0 when there are no facts: nothing is missing. A report that averages recall should skip
    questions whose reference has no facts, or say how many it counted.
    """
    if not facts:
        return 1.0
    keys, text = quantity_keys(answer), normalise(answer)
    return sum(_stated(f, keys, text) for f in facts) / len(facts)


def same_facts(answers: Sequence[str], facts: Sequence[str]) -> bool:
    """True when all answers agree on the facts: each states the same subset of `facts`, and each
    gives the same numbers in the units those facts use. So three answers saying "5 business days"
    agree, and three that all miss it but say "7", "3" and "10 business days" do not. Fewer than two
    answers agree trivially. The consistency metric: the same question asked several times."""
    families = {k.split("|", 1)[1] for k in map(_fact_key, facts) if k and not k.endswith("|")}

    def signature(answer: str) -> tuple[frozenset[str], frozenset[str]]:
        keys, text = quantity_keys(answer), normalise(answer)
        stated = frozenset(f for f in facts if _stated(f, keys, text))
        return stated, frozenset(k for k in keys if k.split("|", 1)[1] in families)

    return len({signature(a) for a in answers}) <= 1


def _fact_key(fact: str) -> str | None:
    """The quantity key of a fact that is exactly one quantity ("5 business days"), else None."""
    text = fact.strip()
    qs = quantities(text)
    return qs[0].key if len(qs) == 1 and qs[0].start == 0 and qs[0].end == len(text) else None


def _stated(fact: str, answer_keys: set[str], answer_text: str) -> bool:
    key = _fact_key(fact)
    return key in answer_keys if key else normalise(fact) in answer_text


def _sentence_initial(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in " \t\"'“‘(*-•#>":
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END


def _mid_sentence_capitals(text: str) -> set[str]:
    """Capitalised words the text uses in mid sentence: names, as far as capitals tell."""
    return {m.group(0) for m in re.finditer(rf"\b{_NAME_WORD}\b", text) if not _sentence_initial(text, m.start())}


def _names(text: str, confirmed: set[str]) -> list[tuple[int, int, str]]:
    """Proper names: Latin runs in Chinese text; capitalised words in English (module docstring)."""
    if detect_language(text) == "zh":
        return [(m.start(), m.end(), m.group(0)) for m in _LATIN_RUN.finditer(text) if len(m.group(0)) > 1]
    out = []
    for m in _NAME.finditer(text):
        words = [(w.start(), w.group(0)) for w in re.finditer(r"\S+", m.group(0))]
        while words and (
            words[0][1].lower() in _LEADING_STOP
            or (words[0][1].lower() in _INITIAL_VERBS and _sentence_initial(text, m.start() + words[0][0]))
        ):
            words.pop(0)
        if not words:
            continue
        start, end = m.start() + words[0][0], m.end()
        first = words[0][1]
        if len(words) > 1 or _looks_like_a_name(first) or first in confirmed or not _sentence_initial(text, start):
            out.append((start, end, text[start:end]))
    return out


def _looks_like_a_name(word: str) -> bool:
    """PayPal, iPhone, X200, DHL: capitals or digits after the first letter are never just sentence case."""
    return any(c.isupper() or c.isdigit() for c in word[1:])
