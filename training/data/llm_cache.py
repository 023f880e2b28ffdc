"""Prompts answered once by an LLM and kept: the teacher (any OpenAI-compatible endpoint,
training/data/teacher.py) or the base model run here with transformers (a self-teacher).

Each reply is appended to a JSONL cache (flushed and fsynced, rag.io.JsonlAppender) under the model and a
hash of the whole prompt, so a rerun, or a build killed midway, asks only the prompts not there yet, and an
edited prompt template is simply asked again. Used for paraphrases (training/data/rewording.py) and for the
teacher's short answers to rule-made questions (training/data/answers.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from rag.io import JsonlAppender

log = logging.getLogger(__name__)

CACHE_VERSION = 1

Progress = Callable[[int, int], None]


def prompt_sha(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:24]


def read_cache(path: Path, model: str) -> dict[str, str]:
    """Replies in the cache from `model`, by prompt hash; unreadable lines (torn by a crash) are skipped."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            if (rec["v"], rec["model"]) == (CACHE_VERSION, model):
                out[rec["prompt_sha"]] = rec["reply"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return out


def ask_all(prompts: list[str], *, cache_path: Path, teacher=None, base_model: str | None = None,
            max_new_tokens: int = 128, progress: Progress | None = None) -> tuple[list[str], dict]:
    """The reply to each prompt (in order; a repeated prompt is asked once), from the cache or from the LLM:
    `teacher` (a TeacherConfig), else `base_model` run here, greedy.

    Returns:
        (replies, counts): counts has `asked` (distinct prompts), `from_cache`, and `requests` (prompts
        sent to the LLM in this run; absent when the cache held everything).

    Raises:
        TeacherError: the teacher cannot be reached or keeps failing; replies finished before are cached.
    """
    if (teacher is None) == (base_model is None):
        raise ValueError("ask_all needs exactly one of teacher and base_model")
    model = teacher.model if teacher is not None else str(base_model)
    unique = {prompt_sha(p): p for p in prompts}
    replies = read_cache(cache_path, model)
    todo = [(sha, p) for sha, p in unique.items() if sha not in replies]
    counts: dict = {"asked": len(unique), "from_cache": len(unique) - len(todo)}
    log.info("%s: %d prompts, %d already in %s", model, len(unique), counts["from_cache"], cache_path)
    if todo:
        writer = JsonlAppender(cache_path)

        def keep(sha: str, prompt: str, reply: str) -> None:
            writer.append({"v": CACHE_VERSION, "model": model, "prompt_sha": sha, "prompt": prompt, "reply": reply})
            replies[sha] = reply
            if progress:
                progress(len(unique) - len(todo) + sum(1 for s, _ in todo if s in replies), len(unique))

        try:
            if teacher is not None:
                counts["requests"] = asyncio.run(_ask_teacher(todo, teacher, keep))
            else:
                counts["requests"] = _ask_model(todo, str(base_model), max_new_tokens, keep)
        finally:
            writer.close()
    return [replies[prompt_sha(p)] for p in prompts], counts


async def _ask_teacher(todo: list[tuple[str, str]], teacher, keep) -> int:
    import openai

    from rag.aio import run_all
    from training.data.teacher import _ask, _Health

    client = openai.AsyncOpenAI(base_url=teacher.base_url, api_key=teacher.api_key or "none", max_retries=0,
                                timeout=teacher.timeout_s)
    counter: Counter = Counter()
    health = _Health()
    pending = iter(todo)

    async def worker() -> None:
        for sha, prompt in pending:
            keep(sha, prompt, await _ask(client, teacher, prompt, counter, health))

    try:
        await run_all([worker() for _ in range(min(teacher.concurrency, len(todo)))])
    finally:
        await client.close()
    return counter["requests"]


def _ask_model(todo: list[tuple[str, str]], base_model: str, max_new_tokens: int, keep) -> int:
    from training.data.dpo import iter_model_answers

    messages = [[{"role": "user", "content": p}] for _, p in todo]
    for i, reply in iter_model_answers(base_model, messages, max_new_tokens=max_new_tokens):
        keep(*todo[i], reply)
    return len(todo)
