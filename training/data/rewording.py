"""Paraphrases written by an LLM: the teacher (any OpenAI-compatible endpoint, training/data/teacher.py)
or the base model itself run here (a self-teacher: slow on a CPU, quick on a GPU), with the rules of
training/data/questions.py filling in whatever the LLM did not give.

    onboard data build --paraphraser teacher   # ONBOARD_TEACHER_BASE_URL / _MODEL set
    onboard data build --paraphraser self --base BASE

One request per question (`training/prompts/paraphrase_{en,zh}.txt`, the question's language picks the
file) asks for `n` ways a customer would type it. A reply line is kept when it is a question (ends in ?
or ？), in the question's language, not the question itself or a line already kept, and of a sane length
(a third to three times the question's); at most `n` are kept, and the rules add more when fewer came.

Resumable like the teacher: each finished question is appended to a JSONL cache (flushed and fsynced)
with the raw reply, under the model, the prompt files' hash and `n`; a rerun asks only the questions not
there, so a crash loses only the questions in flight. Filtering is redone from the raw replies.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rag.io import JsonlAppender
from rag.loaders import detect_language
from training.data.questions import paraphrases as rule_paraphrases
from training.data.teacher_parse import parse_questions

log = logging.getLogger(__name__)

CACHE_VERSION = 1
PROMPT_FILES = ("paraphrase_en.txt", "paraphrase_zh.txt")
PARAPHRASERS = ("auto", "rules", "teacher", "self")
"""auto: the teacher when one is configured, else the rules; self: the base model, run here."""

Progress = Callable[[int, int], None]


@functools.cache
def load_prompt(language: str) -> str:
    return (resources.files("training") / "prompts" / f"paraphrase_{'zh' if language == 'zh' else 'en'}.txt").read_text(
        encoding="utf-8")


@functools.cache
def prompt_version() -> str:
    """A hash of the paraphrase prompts: editing one makes the cache ask every question again."""
    return hashlib.sha256("\n".join(load_prompt(lang) for lang in ("en", "zh")).encode()).hexdigest()[:12]


def render(question: str, language: str, n: int) -> str:
    return re.sub(r"\{(question|n)\}", lambda m: str({"question": question, "n": n}[m[1]]), load_prompt(language))


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).lower()


def keep(question: str, language: str, reply: str | None, n: int) -> list[str]:
    """The usable paraphrases in an LLM's reply (see the module docstring), at most `n`."""
    seen, out = {_key(question)}, []
    for p in parse_questions(reply, 4 * n):
        p = re.sub(r"\s+", " ", p).strip()
        if _key(p) in seen or not len(question) / 3 <= len(p) <= 3 * len(question) + 10:
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


def _qsha(question: str, language: str) -> str:
    return hashlib.sha256(f"{language}\x00{question}".encode()).hexdigest()[:16]


def _read_cache(path: Path, model: str, n: int) -> dict[str, str]:
    """Raw replies in the cache for this model, prompt version and n, by question hash; torn lines skipped."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    want = (CACHE_VERSION, model, prompt_version(), n)
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            if (rec["v"], rec["model"], rec["prompt_version"], rec["n"]) == want:
                out[rec["question_sha"]] = rec["reply"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return out


def _record(model: str, n: int, question: str, language: str, reply: str) -> dict:
    return {"v": CACHE_VERSION, "model": model, "prompt_version": prompt_version(), "n": n,
            "question_sha": _qsha(question, language), "question": question, "language": language, "reply": reply}


async def _ask_teacher(todo: list[tuple[str, str]], n: int, teacher, writer: JsonlAppender, replies: dict,
                       progress: Progress | None, total: int) -> int:
    import openai

    from rag.aio import run_all
    from training.data.teacher import _ask, _Health

    client = openai.AsyncOpenAI(base_url=teacher.base_url, api_key=teacher.api_key or "none", max_retries=0,
                                timeout=teacher.timeout_s)
    counter: Counter = Counter()
    health = _Health()
    pending = iter(todo)

    async def worker() -> None:
        for q, lang in pending:
            reply = await _ask(client, teacher, render(q, lang, n), counter, health)
            writer.append(_record(teacher.model, n, q, lang, reply))
            replies[_qsha(q, lang)] = reply
            if progress:
                progress(len(replies), total)

    try:
        await run_all([worker() for _ in range(min(teacher.concurrency, len(todo)))])
    finally:
        await client.close()
    return counter["requests"]


def _ask_self(todo: list[tuple[str, str]], n: int, base_model: str, writer: JsonlAppender, replies: dict,
              progress: Progress | None, total: int) -> int:
    from training.data.dpo import iter_model_answers

    prompts = [[{"role": "user", "content": render(q, lang, n)}] for q, lang in todo]
    for i, reply in iter_model_answers(base_model, prompts, max_new_tokens=32 * n):
        q, lang = todo[i]
        writer.append(_record(str(base_model), n, q, lang, reply))
        replies[_qsha(q, lang)] = reply
        if progress:
            progress(len(replies), total)
    return len(todo)


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
    llm = replies = None
    counts: Counter = Counter()
    if teacher is not None or base_model is not None:
        if cache_path is None:
            raise ValueError("an LLM paraphraser needs a cache path")
        model = teacher.model if teacher is not None else str(base_model)
        llm = f"teacher:{model}" if teacher is not None else f"self:{Path(model).name}"
        replies = _read_cache(cache_path, model, n)
        todo = [(q, lang) for q, lang in unique if _qsha(q, lang) not in replies]
        counts.update(asked=len(unique), from_cache=len(unique) - len(todo))
        log.info("paraphrases by %s: %d questions, %d already in %s", llm, len(unique), len(unique) - len(todo), cache_path)
        if todo:
            writer = JsonlAppender(cache_path)
            try:
                if teacher is not None:
                    counts["requests"] = asyncio.run(
                        _ask_teacher(todo, n, teacher, writer, replies, progress, len(unique)))
                else:
                    counts["requests"] = _ask_self(todo, n, base_model, writer, replies, progress, len(unique))
            finally:
                writer.close()
    for q, lang in unique:
        got = keep(q, lang, replies.get(_qsha(q, lang)), n) if replies is not None else []
        counts["llm"] += len(got)
        more = [p for p in rule_paraphrases(q, lang, n + len(got)) if _key(p) not in {_key(g) for g in got}]
        out.by_question[(q, lang)] = got + more[: n - len(got)]
    total = sum(len(v) for v in out.by_question.values())
    counts["rules"] = total - counts["llm"]
    out.source = llm or "rules"
    out.counts = {"by": out.source, **dict(counts)}
    return out
