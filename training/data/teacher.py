"""Grounded questions and answers from document chunks, written by a teacher LLM.

    ONBOARD_TEACHER_BASE_URL=http://localhost:8000/v1 ONBOARD_TEACHER_MODEL=Qwen/Qwen2.5-72B-Instruct

Any OpenAI-compatible endpoint works (vLLM, Ollama, llama.cpp, a hosted API). For each chunk, one request
asks for N questions the chunk answers, then one request per question asks for a RAFT-style answer:

    ##Reason: ... ##begin_quote## <a sentence copied from the chunk> ##end_quote## ... ##Answer: <short answer>

Prompts live in `training/prompts/` (`questions_en.txt`, `answer_zh.txt`, ...); the chunk's language picks
EN or ZH. An answer is kept only when it is grounded (training/data/grounding.py): all its quotes occur in
the chunk (ignoring case, whitespace and punctuation), or else at least `min_support` of its content words
do. Empty answers, refusals ("I cannot answer ...") and ungrounded answers are dropped with a reason.
Replies are read by training/data/teacher_parse.py; this module is the client and the orchestration.

Resumable: every finished chunk is appended to a JSONL cache (training/data/teacher_cache.py, flushed and
fsynced) with the teacher's raw replies. A rerun skips chunks already there for the same model, prompts and questions_per_chunk, so a
crash loses only the chunks in flight. Grounding is recomputed from the raw replies on every run.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

from rag.loaders import detect_language
from training.data.grounding import MIN_SUPPORT, check_grounded, content_tokens
from training.data.teacher_cache import CACHE_VERSION, CacheWriter, read_cache, text_sha
from training.data.teacher_parse import parse_answer, parse_questions, strip_think
from training.errors import BadConfig, TeacherError

__all__ = [  # check_grounded, content_tokens and the parsers live elsewhere; importable here as before
    "CACHE_VERSION", "PROMPT_FILES", "ChunkLike", "TeacherConfig", "TeacherItem", "TeacherResult", "agenerate",
    "check_grounded", "content_tokens", "generate", "load_prompt", "parse_answer", "parse_questions",
    "prompt_version", "render",
]

log = logging.getLogger(__name__)

PROMPT_FILES = ("questions_en.txt", "questions_zh.txt", "answer_en.txt", "answer_zh.txt")


class ChunkLike(Protocol):
    """What `generate` needs from a chunk (`rag.chunking.Chunk` fits)."""

    id: str
    text: str


@dataclass
class TeacherConfig:
    """An OpenAI-compatible teacher endpoint and how hard to drive it."""

    base_url: str
    """Endpoint base URL, usually ending in /v1 (env ONBOARD_TEACHER_BASE_URL)."""
    model: str
    """Model name the endpoint serves (env ONBOARD_TEACHER_MODEL)."""
    api_key: str = field(default="none", repr=False)
    """API key (env ONBOARD_TEACHER_API_KEY); local servers accept any. Never logged or printed."""
    questions_per_chunk: int = 2
    """Questions asked per chunk; each gets its own answer request."""
    concurrency: int = 4
    """Requests in flight at once."""
    max_retries: int = 4
    """Retries per request on 429, 5xx, connection errors and timeouts (exponential backoff, honours Retry-After)."""
    timeout_s: float = 120
    """Seconds to wait for one reply before it counts as a failed (retried) attempt."""
    temperature: float = 0.3
    """Sampling temperature for both questions and answers."""
    min_support: float = MIN_SUPPORT
    """Share of the answer's content words that must occur in the chunk when its quotes do not."""

    def __post_init__(self) -> None:
        """Refuse bad values before any request is sent, naming the setting to fix.

        Raises:
            BadConfig: (a ValueError) an empty URL or model, or a value out of range.
        """
        if not self.base_url:
            raise BadConfig("base_url is empty: set ONBOARD_TEACHER_BASE_URL (e.g. http://localhost:8000/v1).")
        if not self.model:
            raise BadConfig("model is empty: set ONBOARD_TEACHER_MODEL to a model the endpoint serves.")
        for name, least in (("questions_per_chunk", 1), ("concurrency", 1), ("max_retries", 0)):
            if getattr(self, name) < least:
                raise BadConfig(f"{name} must be at least {least} (got {getattr(self, name)})")
        if not 0 <= self.min_support <= 1:
            raise BadConfig(f"min_support must be in [0, 1] (got {self.min_support})")

    @classmethod
    def from_env(cls, **overrides) -> TeacherConfig | None:
        """The teacher configured in the environment, or None when ONBOARD_TEACHER_BASE_URL is unset.

        Args:
            overrides: field values that win over the defaults (None values are ignored, so CLI options
                can be passed straight through).

        Raises:
            TeacherError: the base URL is set but ONBOARD_TEACHER_MODEL is not.
        """
        base_url = os.environ.get("ONBOARD_TEACHER_BASE_URL", "").strip()
        if not base_url:
            return None
        model = os.environ.get("ONBOARD_TEACHER_MODEL", "").strip()
        if not model and not overrides.get("model"):
            raise TeacherError(
                f"ONBOARD_TEACHER_BASE_URL is set ({base_url}) but ONBOARD_TEACHER_MODEL is not: set it to a "
                f"model the endpoint serves (`curl {base_url.rstrip('/')}/models` lists them)."
            )
        values = {"base_url": base_url, "model": model,
                  "api_key": os.environ.get("ONBOARD_TEACHER_API_KEY", "").strip() or "none"}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class TeacherItem:
    """One generated question with its answer, kept or dropped."""

    chunk_id: str
    """The chunk the question was written from and must be answered by."""
    question: str
    reason: str
    """The teacher's reasoning, with its ##begin_quote##/##end_quote## markers (RAFT style)."""
    quote: str
    """The verbatim quotes from the chunk, one per line."""
    answer: str
    """The short final answer (the part after ##Answer:), the SFT target."""
    raft: str
    """The whole reasoned reply (##Reason ... ##Answer: ...), the RAFT target."""
    language: str
    """'en' or 'zh': the language of the chunk and of the prompts used."""
    model: str
    """The teacher model that wrote it."""
    grounded: bool
    """True when kept: the quotes occur in the chunk, or enough of the answer's words do."""
    why_dropped: str | None
    """None when kept, else 'empty-answer', 'cannot-answer' or 'not-grounded'."""
    support: float
    """Share of the answer's content words found in the chunk."""


@dataclass
class TeacherResult:
    """What one `generate` run produced."""

    items: list[TeacherItem]
    """Grounded items, in chunk order, then question order."""
    dropped: dict[str, int]
    """Dropped items by reason; 'no-questions' counts chunks whose question reply held no question."""
    dropped_items: list[TeacherItem]
    """The dropped items themselves, for inspection."""
    requests: int
    """Requests this run sent (retries of one request count once)."""
    chunks_generated: int
    """Chunks sent to the teacher in this run."""
    chunks_from_cache: int
    """Chunks found finished in the cache and not sent again."""
    cache_path: Path

    def summary(self) -> dict:
        """JSON-ready counts for a dataset's stats.json."""
        return {"kept": len(self.items), "dropped": self.dropped, "requests": self.requests,
                "chunks_generated": self.chunks_generated, "chunks_from_cache": self.chunks_from_cache,
                "cache": str(self.cache_path)}


@functools.cache
def load_prompt(kind: str, language: str) -> str:
    """The prompt template `training/prompts/{kind}_{en|zh}.txt` (kind: 'questions' or 'answer')."""
    name = f"{kind}_{'zh' if language == 'zh' else 'en'}.txt"
    return (resources.files("training") / "prompts" / name).read_text(encoding="utf-8")


@functools.cache
def prompt_version() -> str:
    """A hash of all prompt files: editing a prompt makes the cache redo every chunk."""
    h = hashlib.sha256()
    for name in PROMPT_FILES:
        kind, lang = name.removesuffix(".txt").split("_")
        h.update(f"{name}\n{load_prompt(kind, lang)}\n".encode())
    return h.hexdigest()[:12]


def render(template: str, **values: object) -> str:
    """Fill {context}, {n} and {question}. Not str.format: chunks may hold braces of their own."""
    return re.sub(r"\{(context|n|question)\}", lambda m: str(values[m[1]]), template)


def _items_from_record(rec: dict, chunk_text: str, cfg: TeacherConfig) -> list[TeacherItem]:
    items = []
    for qa in rec["answers"]:
        reason, quotes, answer = parse_answer(qa["reply"])
        why, support = check_grounded(answer, quotes, chunk_text, cfg.min_support)
        items.append(TeacherItem(
            chunk_id=rec["chunk_id"], question=qa["question"], reason=reason, quote="\n".join(quotes),
            answer=answer, raft=strip_think(qa["reply"]), language=rec["language"], model=rec["model"],
            grounded=why is None, why_dropped=why, support=round(support, 3),
        ))
    return items


async def _ask(client, cfg: TeacherConfig, prompt: str, counter: Counter) -> str:
    """One chat completion; the client retries 429/5xx/connection errors. Raises TeacherError."""
    import openai

    url = cfg.base_url
    counter["requests"] += 1
    try:
        resp = await client.chat.completions.create(
            model=cfg.model, messages=[{"role": "user", "content": prompt}], temperature=cfg.temperature)
    except openai.AuthenticationError as e:  # the server's message may echo part of the key: leave it out
        raise TeacherError(f"teacher at {url} rejected the API key (HTTP 401): set ONBOARD_TEACHER_API_KEY "
                           "to a valid key for this endpoint.") from e
    except openai.PermissionDeniedError as e:
        raise TeacherError(f"teacher at {url} refused access to model {cfg.model!r} (HTTP 403): check that "
                           "ONBOARD_TEACHER_API_KEY may use it.") from e
    except openai.NotFoundError as e:
        raise TeacherError(f"teacher at {url} answered 404 for model {cfg.model!r}: check ONBOARD_TEACHER_MODEL "
                           f"(`curl {url.rstrip('/')}/models` lists the models) and that ONBOARD_TEACHER_BASE_URL "
                           "ends in /v1.") from e
    except openai.APIStatusError as e:
        retried = f" after {cfg.max_retries} retries" if e.status_code == 429 or e.status_code >= 500 else ""
        raise TeacherError(f"teacher at {url} failed with HTTP {e.status_code}{retried}: {str(e.message)[:300]}. "
                           "Check the server's log and load; finished chunks are cached, rerun to continue.") from e
    except openai.APITimeoutError as e:
        raise TeacherError(f"teacher at {url} did not answer within {cfg.timeout_s:g} s ({cfg.max_retries} retries): "
                           "check the server's load, or raise the timeout; finished chunks are cached, rerun to "
                           "continue.") from e
    except openai.APIConnectionError as e:
        raise TeacherError(f"teacher at {url} is unreachable ({cfg.max_retries} retries): check that the server "
                           "is running and that ONBOARD_TEACHER_BASE_URL is right (it usually ends in /v1).") from e
    if not resp.choices:
        return ""
    return resp.choices[0].message.content or ""


async def _generate_chunk(client, cfg: TeacherConfig, chunk: ChunkLike, version: str, counter: Counter) -> dict:
    """Ask for questions, then an answer to each; return the cache record (raw replies)."""
    language = detect_language(chunk.text)
    n = cfg.questions_per_chunk
    reply = await _ask(client, cfg, render(load_prompt("questions", language), context=chunk.text, n=n), counter)
    answers = []
    for question in parse_questions(reply, n):
        prompt = render(load_prompt("answer", language), context=chunk.text, question=question)
        answers.append({"question": question, "reply": await _ask(client, cfg, prompt, counter)})
    return {"v": CACHE_VERSION, "chunk_id": chunk.id, "text_sha": text_sha(chunk.text), "model": cfg.model,
            "prompt_version": version, "questions_per_chunk": n, "language": language,
            "questions_reply": reply, "answers": answers}


async def _run_all(workers: list) -> None:
    """Run the workers; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(w) for w in workers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()


async def agenerate(
    chunks: Iterable[ChunkLike], cfg: TeacherConfig, cache_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> TeacherResult:
    """Async `generate`, for callers that already run an event loop."""
    import openai

    cache_path = Path(cache_path)
    version = prompt_version()
    unique = {(c.id, text_sha(c.text)): c for c in chunks if c.text.strip()}  # keeps first-seen order
    records = read_cache(cache_path, cfg.model, version, cfg.questions_per_chunk)
    from_cache = sum(1 for k in unique if k in records)
    todo = [c for k, c in unique.items() if k not in records]
    log.info("teacher %s at %s: %d chunks, %d already in %s, %d to generate",
             cfg.model, cfg.base_url, len(unique), from_cache, cache_path, len(todo))
    counter: Counter = Counter()
    done = from_cache
    if progress:
        progress(done, len(unique))
    if todo:
        pending = iter(todo)  # shared by the workers: each takes the next chunk when it is free
        writer = CacheWriter(cache_path)
        client = openai.AsyncOpenAI(base_url=cfg.base_url, api_key=cfg.api_key or "none",
                                    max_retries=cfg.max_retries, timeout=cfg.timeout_s)

        async def worker() -> None:
            nonlocal done
            for chunk in pending:
                rec = await _generate_chunk(client, cfg, chunk, version, counter)
                writer.append(rec)
                records[(rec["chunk_id"], rec["text_sha"])] = rec
                done += 1
                if progress:
                    progress(done, len(unique))

        try:
            await _run_all([worker() for _ in range(min(cfg.concurrency, len(todo)))])
        finally:
            writer.close()
            await client.close()

    kept, dropped_items, dropped = [], [], Counter()
    for key, chunk in unique.items():
        rec = records[key]
        if not rec["answers"]:
            dropped["no-questions"] += 1
        for item in _items_from_record(rec, chunk.text, cfg):
            (kept if item.grounded else dropped_items).append(item)
            if not item.grounded:
                dropped[item.why_dropped] += 1
    log.info("teacher: %d items kept, dropped %s, %d requests", len(kept), dict(dropped), counter["requests"])
    return TeacherResult(items=kept, dropped=dict(dropped), dropped_items=dropped_items,
                         requests=counter["requests"], chunks_generated=len(todo), chunks_from_cache=from_cache,
                         cache_path=cache_path)


def generate(
    chunks: Iterable[ChunkLike], cfg: TeacherConfig, cache_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> TeacherResult:
    """Write N questions per chunk and a grounded answer to each, with the teacher LLM.

    Args:
        chunks: objects with `.id` and `.text` (e.g. `rag.chunking.Chunk`); empty ones are skipped and a
            repeated (id, text) is done once. The language (and so the prompts) is detected from the text.
        cfg: the endpoint and limits, usually `TeacherConfig.from_env()`.
        cache_path: append-only JSONL of finished chunks; chunks found there are not sent again.
        progress: called with (chunks done, chunks total) after each chunk.

    Returns:
        TeacherResult; `items` are in chunk order, then question order, whatever order replies came in.

    Raises:
        TeacherError: the endpoint is unreachable, rejects the key or model, or keeps failing after
            retries. Chunks finished before that are in the cache; rerunning continues from there.
    """
    return asyncio.run(agenerate(chunks, cfg, cache_path, progress))
