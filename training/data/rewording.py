"""Paraphrases written by an LLM: the teacher (any OpenAI-compatible endpoint, training/data/teacher.py)
or the base model itself run here (a self-teacher: slow on a CPU, quick on a GPU), with the rules of
training/data/questions.py filling in whatever the LLM did not give.

    onboard data build --paraphraser teacher   # ONBOARD_TEACHER_BASE_URL / _MODEL set
    onboard data build --paraphraser self --base BASE

One request per question (`training/prompts/paraphrase_{en,zh}.txt`, the question's language picks the
file) asks for `n` ways a customer would type it. A reply line is kept when it is a question (ends in ?
or ？), in the question's language, not the question itself or a line already kept, and of a sane length
(a third to three times the question's); at most `n` are kept, and the rules add more when fewer came.

Resumable like the teacher: each raw reply is cached (training/data/llm_cache.py) under the model and
the whole prompt, so a rerun asks only the questions not there and a crash loses only those in flight;
filtering is redone from the raw replies.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rag.loaders import detect_language
from training.data.llm_cache import ask_all
from training.data.questions import paraphrases as rule_paraphrases
from training.data.teacher_parse import parse_questions

log = logging.getLogger(__name__)

PARAPHRASERS = ("auto", "rules", "teacher", "self")
"""auto: the teacher when one is configured, else the rules; self: the base model, run here."""

Progress = Callable[[int, int], None]


@functools.cache
def load_prompt(language: str) -> str:
    return (resources.files("training") / "prompts" / f"paraphrase_{'zh' if language == 'zh' else 'en'}.txt").read_text(
        encoding="utf-8")


def render(question: str, language: str, n: int) -> str:
    return re.sub(r"\{(question|n)\}", lambda m: str({"question": question, "n": n}[m[1]]), load_prompt(language))


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).lower()


LENGTH_RATIO = 3
"""A paraphrase from 1/3 to 3x (+10 characters) the question's length: shorter ones have dropped what the
question asks about, longer ones have added to it (a heuristic, not tuned on data)."""


def keep(question: str, language: str, reply: str | None, n: int) -> list[str]:
    """The usable paraphrases in an LLM's reply (see the module docstring), at most `n`."""
    seen, out = {_key(question)}, []
    for p in parse_questions(reply, 4 * n):
        p = re.sub(r"\s+", " ", p).strip()
        if _key(p) in seen or not len(question) / LENGTH_RATIO <= len(p) <= LENGTH_RATIO * len(question) + 10:
            continue
        if detect_language(p) != ("zh" if language == "zh" else "en"):
            continue
        seen.add(_key(p))
        out.append(p)
    return out[:n]


@dataclass
class Rewording:
    """The paraphrases of every question asked, and how they were made."""

    by_question: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(question, language) -> its paraphrases, the LLM's first, then the rules'."""
    source: str = "rules"
    """"rules", "teacher:<model>" or "self:<model>"."""
    counts: dict = field(default_factory=dict)

    def get(self, question: str, language: str) -> list[str]:
        return self.by_question.get((question, language), [])


def reword(questions: list[tuple[str, str]], n: int, *, teacher=None, base_model: str | None = None,
           cache_path: Path | None = None, progress: Progress | None = None) -> Rewording:
    """Up to `n` paraphrases of each (question, language): from `teacher` (a TeacherConfig) or, with
    `base_model`, from that model run here; the rules (training/data/questions.py) alone when neither
    is given, and for what the LLM left short.

    Raises:
        TeacherError: the teacher cannot be reached or keeps failing; questions finished before are cached.
    """
    unique = list(dict.fromkeys(questions))
    out = Rewording()
    if n <= 0:
        return out
    replies: list[str | None] = [None] * len(unique)
    counts: Counter = Counter()
    if teacher is not None or base_model is not None:
        if cache_path is None:
            raise ValueError("an LLM paraphraser needs a cache path")
        out.source = f"teacher:{teacher.model}" if teacher is not None else f"self:{Path(base_model).name}"
        replies, asked = ask_all([render(q, lang, n) for q, lang in unique], cache_path=cache_path, teacher=teacher,
                                 base_model=base_model, max_new_tokens=32 * n, progress=progress)
        counts.update(asked)
    for (q, lang), reply in zip(unique, replies, strict=True):
        got = keep(q, lang, reply, n)
        counts["llm"] += len(got)
        more = [p for p in rule_paraphrases(q, lang, n + len(got)) if _key(p) not in {_key(g) for g in got}]
        out.by_question[(q, lang)] = got + more[: n - len(got)]
    counts["rules"] = sum(len(v) for v in out.by_question.values()) - counts["llm"]
    out.counts = {"by": out.source, **dict(counts)}
    if out.source != "rules" and counts["asked"] and counts["llm"] < counts["asked"]:
        log.warning("paraphrases: %s gave %d usable of the %d asked for (%d questions); the rules wrote the other %d. "
                    "Replies are in %s.", out.source, counts["llm"], n * counts["asked"], counts["asked"],
                    counts["rules"], cache_path)
    return out
