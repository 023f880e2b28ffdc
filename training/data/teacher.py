"""Grounded questions and answers from document chunks, written by a teacher LLM.

    ONBOARD_TEACHER_BASE_URL=http://localhost:8000/v1 ONBOARD_TEACHER_MODEL=Qwen/Qwen2.5-72B-Instruct

Any OpenAI-compatible endpoint works (vLLM, Ollama, llama.cpp, a hosted API). For each chunk, one request
asks for N questions the chunk answers, then one request per question asks for a RAFT-style answer:

    ##Reason: ... ##begin_quote## <a sentence copied from the chunk> ##end_quote## ... ##Answer: <short answer>

Prompts live in `training/prompts/` (`questions_en.txt`, `answer_zh.txt`, ...); the chunk's language picks
EN or ZH. An answer is kept only when it is grounded (rag/grounding.py): all its quotes occur in
the chunk (ignoring case, whitespace and punctuation), or else at least `min_support` of its content words
do. Empty answers, refusals ("I cannot answer ...") and ungrounded answers are dropped with a reason.
Replies are read by training/data/teacher_parse.py; this module is the client and the orchestration.

Each request waits `timeout_s` for its reply (ONBOARD_TEACHER_TIMEOUT, --teacher-timeout) and is retried
`max_retries` times (ONBOARD_TEACHER_RETRIES, --teacher-retries). A server that accepts connections and never
answers stops the run as soon as FAIL_FAST_TIMEOUTS attempts have timed out without any reply, naming the URL.

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
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

from rag.aio import run_all
from rag.grounding import MIN_SUPPORT, check_grounded, content_tokens
from rag.loaders import detect_language
from training.data.teacher_cache import CACHE_VERSION, CacheWriter, read_cache, text_sha
from training.data.teacher_parse import parse_answer, parse_questions, strip_think
from training.errors import BadConfig, TeacherError

__all__ = [  # check_grounded, content_tokens and the parsers live elsewhere; importable here as before
    "CACHE_VERSION", "PROMPT_FILES", "ChunkLike", "TeacherConfig", "TeacherItem", "TeacherResult", "agenerate",
    "check_grounded", "content_tokens", "generate", "load_prompt", "parse_answer", "parse_questions",
    "prompt_version", "render",
]

log = logging.getLogger(__name__)

FAIL_FAST_TIMEOUTS = 3
"""Timed-out attempts, before the teacher has answered anything, that stop the run. A server that accepts
connections but never answers (a model still loading, a wedged worker, a proxy in front of nothing) would
otherwise hold each request for (retries + 1) x timeout: 10 minutes with the defaults."""
RETRY_STATUSES = (408, 409, 429)
"""HTTP statuses retried (with every 5xx), as the openai client does."""
SETTINGS = {"timeout_s": ("--teacher-timeout", "ONBOARD_TEACHER_TIMEOUT", float, "the seconds to wait for a reply"),
            "max_retries": ("--teacher-retries", "ONBOARD_TEACHER_RETRIES", int, "the retries per request")}
"""Fields `TeacherConfig.from_env` also reads from the environment: (flag, variable, type, what it is)."""


def _named(field_name: str) -> str:
    """How errors name a setting: its flag and environment variable, or its field name."""
    flag, var, _, _ = SETTINGS.get(field_name, (field_name, None, None, None))
    return f"{flag} ({var})" if var else flag


def _from_env(field_name: str):
    """The setting's value from its environment variable, None when unset.

    Raises:
        BadConfig: the variable is set to something that does not parse; the variable is named.
    """
    _, var, parse, what = SETTINGS[field_name]
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    try:
        return parse(raw)
    except ValueError:
        kind = "a number" if parse is float else "a whole number"
        raise BadConfig(f"{var}={raw!r} is not {kind}: set it to {what}, or unset it.") from None


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
    """Retries per request on 408, 409, 429, 5xx, connection errors and timeouts (exponential backoff, honours
    Retry-After); env ONBOARD_TEACHER_RETRIES, flag --teacher-retries."""
    timeout_s: float = 120
    """Seconds to wait for one reply before it counts as a failed (retried) attempt; env ONBOARD_TEACHER_TIMEOUT,
    flag --teacher-timeout. Until the teacher has answered once, FAIL_FAST_TIMEOUTS timed-out attempts stop the run."""
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
                raise BadConfig(f"{_named(name)} must be at least {least} (got {getattr(self, name)})")
        if not self.timeout_s > 0:  # also refuses NaN
            raise BadConfig(f"{_named('timeout_s')} must be more than 0 seconds (got {self.timeout_s})")
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
            BadConfig: ONBOARD_TEACHER_TIMEOUT / _RETRIES do not parse or are out of range, or a timeout or
                retry count is given while no teacher is configured; the variable or flag is named.
        """
        base_url = os.environ.get("ONBOARD_TEACHER_BASE_URL", "").strip()
        if not base_url:
            given = [SETTINGS[k][0] for k in SETTINGS if overrides.get(k) is not None]
            if given:  # a timeout or retry count for a teacher that is not there would be silently ignored
                raise BadConfig(f"{' and '.join(given)} set but no teacher is configured: set ONBOARD_TEACHER_BASE_URL "
                                "and ONBOARD_TEACHER_MODEL, or drop the option.")
            return None
        model = os.environ.get("ONBOARD_TEACHER_MODEL", "").strip()
        if not model and not overrides.get("model"):
            raise TeacherError(
                f"ONBOARD_TEACHER_BASE_URL is set ({base_url}) but ONBOARD_TEACHER_MODEL is not: set it to a "
                f"model the endpoint serves (`curl {base_url.rstrip('/')}/models` lists them)."
            )
        values = {"base_url": base_url, "model": model,
                  "api_key": os.environ.get("ONBOARD_TEACHER_API_KEY", "").strip() or "none"}
        for name in SETTINGS:
            if overrides.get(name) is None and (value := _from_env(name)) is not None:  # a flag wins over the env
                values[name] = value
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


@dataclass
class _Health:
    """What the workers of one run have seen of the teacher, shared so they can give up together."""

    answered: bool = False
    """The teacher has replied to a request (an HTTP error status counts: the server is there)."""
    timeouts: int = 0
    """Attempts that timed out before any reply."""


def _retry_delay(attempt: int, error: Exception) -> float:
    """Seconds before retry `attempt + 1`: the server's Retry-After(-ms) when it gives one up to a minute,
    else exponential backoff from 0.5 s, capped at 8 s, with jitter (the openai client's rule)."""
    response = getattr(error, "response", None)
    headers = response.headers if response is not None else {}
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            wait = float(headers.get(name, "")) * scale
        except ValueError:
            continue
        if 0 < wait <= 60:
            return wait
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())


def _status_error(cfg: TeacherConfig, e) -> TeacherError:
    """The one-line error for an HTTP error reply that is not (or no longer) retried."""
    url = cfg.base_url
    if e.status_code == 401:  # the server's message may echo part of the key: leave it out
        return TeacherError(f"teacher at {url} rejected the API key (HTTP 401): set ONBOARD_TEACHER_API_KEY to a "
                            "valid key for this endpoint.")
    if e.status_code == 403:
        return TeacherError(f"teacher at {url} refused access to model {cfg.model!r} (HTTP 403): check that "
                            "ONBOARD_TEACHER_API_KEY may use it.")
    if e.status_code == 404:
        return TeacherError(f"teacher at {url} answered 404 for model {cfg.model!r}: check ONBOARD_TEACHER_MODEL "
                            f"(`curl {url.rstrip('/')}/models` lists the models) and that ONBOARD_TEACHER_BASE_URL "
                            "ends in /v1.")
    retried = f" after {cfg.max_retries} retries" if _retried(e.status_code) else ""
    return TeacherError(f"teacher at {url} failed with HTTP {e.status_code}{retried}: {str(e.message)[:300]}. "
                        "Check the server's log and load; finished chunks are cached, rerun to continue.")


def _retried(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


async def _ask(client, cfg: TeacherConfig, prompt: str, counter: Counter, health: _Health) -> str:
    """One chat completion, retried here (the client itself does not retry) on 408/409/429/5xx, connection
    errors and timeouts, up to `cfg.max_retries` times. Raises TeacherError, at once when FAIL_FAST_TIMEOUTS
    attempts have timed out before the teacher answered anything."""
    import openai

    url = cfg.base_url
    counter["requests"] += 1
    for attempt in range(cfg.max_retries + 1):
        last = attempt == cfg.max_retries
        try:
            resp = await client.chat.completions.create(
                model=cfg.model, messages=[{"role": "user", "content": prompt}], temperature=cfg.temperature)
        except openai.APITimeoutError as e:  # before APIConnectionError, its base class
            if not health.answered:
                health.timeouts += 1
                # on a request's last attempt its own error says it all (and does not race the others')
                if health.timeouts >= FAIL_FAST_TIMEOUTS and not last:
                    raise TeacherError(
                        f"teacher at {url} has answered nothing: its first {health.timeouts} attempts each timed out "
                        f"after {cfg.timeout_s:g} s. Check that the server is up and has finished loading its model, "
                        f"or raise the timeout with {_named('timeout_s')}.") from e
            if last:
                raise TeacherError(
                    f"teacher at {url} did not answer within {cfg.timeout_s:g} s ({cfg.max_retries} retries): check "
                    f"the server's load, or raise {_named('timeout_s')}; finished chunks are cached, rerun to "
                    "continue.") from e
            error: Exception = e
        except openai.APIConnectionError as e:
            if last:
                raise TeacherError(
                    f"teacher at {url} is unreachable ({cfg.max_retries} retries): check that the server is running "
                    "and that ONBOARD_TEACHER_BASE_URL is right (it usually ends in /v1).") from e
            error = e
        except openai.APIStatusError as e:
            health.answered = True
            if last or not _retried(e.status_code):
                raise _status_error(cfg, e) from e
            error = e
        else:
            health.answered = True
            return (resp.choices[0].message.content or "") if resp.choices else ""
        log.debug("teacher attempt %d failed (%s); retrying", attempt + 1, type(error).__name__)
        await asyncio.sleep(_retry_delay(attempt, error))
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _generate_chunk(client, cfg: TeacherConfig, chunk: ChunkLike, version: str, counter: Counter,
                          health: _Health) -> dict:
    """Ask for questions, then an answer to each; return the cache record (raw replies)."""
    language = detect_language(chunk.text)
    n = cfg.questions_per_chunk
    reply = await _ask(client, cfg, render(load_prompt("questions", language), context=chunk.text, n=n), counter,
                       health)
    answers = []
    for question in parse_questions(reply, n):
        prompt = render(load_prompt("answer", language), context=chunk.text, question=question)
        answers.append({"question": question, "reply": await _ask(client, cfg, prompt, counter, health)})
    return {"v": CACHE_VERSION, "chunk_id": chunk.id, "text_sha": text_sha(chunk.text), "model": cfg.model,
            "prompt_version": version, "questions_per_chunk": n, "language": language,
            "questions_reply": reply, "answers": answers}


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
                                    max_retries=0, timeout=cfg.timeout_s)  # _ask retries, and knows when to stop
        health = _Health()

        async def worker() -> None:
            nonlocal done
            for chunk in pending:
                rec = await _generate_chunk(client, cfg, chunk, version, counter, health)
                writer.append(rec)
                records[(rec["chunk_id"], rec["text_sha"])] = rec
                done += 1
                if progress:
                    progress(done, len(unique))

        try:
            await run_all([worker() for _ in range(min(cfg.concurrency, len(todo)))])
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
