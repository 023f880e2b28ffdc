"""The optional LLM judge of `onboard eval`: an OpenAI-compatible endpoint scores each answer 1-5.

    ONBOARD_JUDGE_BASE_URL=http://localhost:8000/v1 ONBOARD_JUDGE_MODEL=Qwen/Qwen2.5-72B-Instruct onboard eval

Three scores per answer, from the rubric in `evaluation/prompts/judge.md`: correctness (against the
reference's facts), faithfulness (every claim supported by the retrieved chunks; without retrieval, no
invented specifics) and tone (a polite customer-service reply in the user's language).

Why the judge is checked against the rules: a judge model has its own biases (long answers, its own
phrasing), so the report states how far it agrees with the rule metrics on the same answers (Spearman
rank correlation with `facts` and `f1_char`, and how often judge and rule agree on pass/fail). A judge
that disagrees with key-fact recall is measuring something else, or nothing.

A reply that is not a JSON object with three whole scores in 1..5 is a failure for that answer, counted
and shown with its reason, never a guessed score. Timeouts, 408/409/429 and 5xx are retried with backoff;
a rejected key or unknown model (401/403/404), an unreachable server, or one that never answers stops
the run with the URL named (never the key).

Resumable: each scored answer is appended to a JSONL cache (flushed and fsynced) with the judge's raw
reply, keyed by system, item, prompt version, judge model and a hash of the answer and its sources; a
rerun asks only for what is not there. Replies are parsed again on reading, so a fixed parser needs no
new requests.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from evaluation.errors import EvaluationError
from evaluation.judge_summary import SCORES
from evaluation.judge_summary import summarise as _summarise
from evaluation.questions import Question
from evaluation.results import Answer, JudgeScore, JudgeSummary
from rag.aio import run_all
from rag.errors import BadOption
from rag.io import JsonlAppender
from rag.jsontext import THINK, json_objects

log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Bumped when the cache line layout changes; lines of another version are ignored (judged again)."""
FAIL_FAST_TIMEOUTS = 3
"""Timed-out attempts, before the judge has answered anything, that stop the run: a server that accepts
connections and never answers would otherwise hold every answer for (retries + 1) x timeout."""
RETRY_STATUSES = (408, 409, 429)
"""HTTP statuses retried, with every 5xx (the openai client's rule)."""

Item = tuple[str, Question, Answer]
"""(system, question, that system's greedy answer); the answer's contexts are the sources judged against."""


class BadJudge(EvaluationError, BadOption):
    """The judge's settings (ONBOARD_JUDGE_*) are incomplete or do not parse; the variable is named."""


class JudgeFailed(EvaluationError):
    """The judge endpoint cannot be used at all: it rejects the key or model, is unreachable, or never
    answers. The URL is named, never the key; answers judged before are in the cache."""


class JudgeConfig(BaseModel):
    """An OpenAI-compatible judge endpoint and how hard to drive it."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    """Endpoint base URL, usually ending in /v1 (ONBOARD_JUDGE_BASE_URL)."""
    model: str
    """Model name the endpoint serves (ONBOARD_JUDGE_MODEL)."""
    api_key: SecretStr = Field(default=SecretStr("none"), repr=False)
    """API key (ONBOARD_JUDGE_API_KEY); local servers accept any. Never logged, printed or dumped."""
    timeout_s: float = Field(default=120, gt=0)
    """Seconds to wait for one reply before the attempt counts as failed (ONBOARD_JUDGE_TIMEOUT)."""
    max_retries: int = Field(default=2, ge=0)
    """Retries per answer on timeouts, connection errors, 408/409/429 and 5xx."""
    concurrency: int = Field(default=4, ge=1)
    """Requests in flight at once."""

    @classmethod
    def from_env(cls) -> JudgeConfig | None:
        """The judge configured in the environment, or None when ONBOARD_JUDGE_BASE_URL is unset.

        Raises:
            BadJudge: the base URL is set but ONBOARD_JUDGE_MODEL is not, the URL is not http(s), or
                ONBOARD_JUDGE_TIMEOUT is not a number of seconds above 0; the variable is named.
        """
        base_url = os.environ.get("ONBOARD_JUDGE_BASE_URL", "").strip()
        if not base_url:
            return None
        if not base_url.startswith(("http://", "https://")):
            raise BadJudge(f"ONBOARD_JUDGE_BASE_URL={base_url!r} is not an http(s) URL: set it to the endpoint, "
                           "e.g. http://localhost:8000/v1, or unset it to evaluate without the judge.")
        model = os.environ.get("ONBOARD_JUDGE_MODEL", "").strip()
        if not model:
            raise BadJudge(f"ONBOARD_JUDGE_BASE_URL is set ({base_url}) but ONBOARD_JUDGE_MODEL is not: set it to a "
                           f"model the endpoint serves (`curl {base_url.rstrip('/')}/models` lists them), or unset "
                           "ONBOARD_JUDGE_BASE_URL to evaluate without the judge.")
        values: dict = {"base_url": base_url, "model": model,
                        "api_key": os.environ.get("ONBOARD_JUDGE_API_KEY", "").strip() or "none"}
        raw = os.environ.get("ONBOARD_JUDGE_TIMEOUT", "").strip()
        if raw:
            try:
                values["timeout_s"] = float(raw)
            except ValueError:
                values["timeout_s"] = math.nan
            if not values["timeout_s"] > 0:  # also refuses NaN
                raise BadJudge(f"ONBOARD_JUDGE_TIMEOUT={raw!r} is not a number of seconds above 0: set it to the "
                               "seconds to wait for one reply, or unset it (default 120).")
        return cls(**values)


# --- the prompt -----------------------------------------------------------------------------------

_COMMENT = re.compile(r"\A\s*<!--(.*?)-->\s*", re.S)
_PLACEHOLDER = re.compile(r"\{(question|reference|sources|answer)\}")


@functools.cache
def _prompt_file() -> str:
    return (resources.files("evaluation") / "prompts" / "judge.md").read_text(encoding="utf-8")


def load_prompt() -> str:
    """The judge prompt template (`evaluation/prompts/judge.md`) without its leading comment."""
    return _COMMENT.sub("", _prompt_file(), count=1)


@functools.cache
def prompt_version() -> str:
    """'v<marker>-<hash>': the version in the prompt's comment and a hash of the whole file, so an edit
    that forgot to bump the marker still re-judges (and the report says which prompt scored it)."""
    text = _prompt_file()
    m = re.search(r"version\s+(\d+)", (_COMMENT.match(text) or [""])[0])
    if not m:
        raise BadJudge("evaluation/prompts/judge.md has no 'version N' in its leading comment: restore it.")
    return f"v{m[1]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def format_sources(answer: Answer) -> str:
    """The retrieved chunks numbered as the answer cites them ([1], [2], ...), "(none)" without retrieval."""
    if not answer.contexts:
        return "(none)"
    out = []
    for n, text in enumerate(answer.contexts, 1):
        where = answer.sources[n - 1] if n - 1 < len(answer.sources) else ""
        out.append(f"[{n}]{f' ({where})' if where else ''} {text.strip()}")
    return "\n\n".join(out)


def render(question: Question, answer: Answer) -> str:
    """The prompt for one answer. One regex pass, not str.format: answers and chunks may hold braces
    (or a placeholder's name) of their own, and the rubric holds JSON."""
    values = {"question": question.question.strip(), "reference": question.reference.strip(),
              "sources": format_sources(answer), "answer": answer.text.strip() or "(empty answer)"}
    return _PLACEHOLDER.sub(lambda m: values[m[1]], load_prompt())


# --- reading the reply ----------------------------------------------------------------------------


def _whole_score(name: str, value: object) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name}={value!r} is not a whole number from 1 to 5")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError(f"{name}={value!r} is not a whole number from 1 to 5")
    if not 1 <= value <= 5:
        raise ValueError(f"{name}={value} is outside 1-5")
    return value


def parse_reply(reply: str) -> tuple[dict[str, int], str | None]:
    """The three scores and the reason from a judge's reply: the last JSON object holding a score, in a
    ```json fence, after prose, or bare.

    Raises:
        ValueError: no such object, or a score missing, not a whole number, or outside 1-5 (never guessed).
    """
    text = THINK.sub("", reply or "").strip()
    found = [o for o in json_objects(text) if any(k in o for k in SCORES)]
    if not found:
        snippet = " ".join(text.split())[:120]
        raise ValueError(f"no JSON object with correctness, faithfulness and tone in the reply: {snippet!r}")
    obj = found[-1]
    missing = [k for k in SCORES if k not in obj]
    if missing:
        raise ValueError(f"{' and '.join(missing)} missing from the reply's JSON object")
    scores = {k: _whole_score(k, obj[k]) for k in SCORES}
    reason = obj.get("reason")
    return scores, (str(reason).strip()[:500] if reason is not None else None)


def _score(system: str, item: str, reply: str) -> JudgeScore:
    try:
        scores, reason = parse_reply(reply)
    except ValueError as e:
        return JudgeScore(system=system, item=item, error=f"unreadable reply: {e}")
    return JudgeScore(system=system, item=item, reason=reason, **scores)


# --- the cache ------------------------------------------------------------------------------------

def answer_sha(answer: Answer) -> str:
    """What was judged: the answer's text and its sources (faithfulness depends on both)."""
    return hashlib.sha256("\x00".join([answer.text, *answer.contexts]).encode()).hexdigest()[:16]


def read_cache(path: Path, model: str, version: str) -> dict[tuple[str, str, str], str]:
    """Raw replies by (system, item, answer sha) for this judge model and prompt version. Only replies
    that parse are kept: an unreadable one is asked again. Unreadable lines are skipped."""
    out: dict[tuple[str, str, str], str] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            same = (rec["v"], rec["model"], rec["prompt_version"]) == (CACHE_VERSION, model, version)
            key, reply = (rec["system"], rec["item"], rec["answer_sha"]), rec["reply"]
        except (ValueError, KeyError, TypeError):
            continue
        if same and _score("", "", reply).ok:
            out[key] = reply
    return out


# --- the client -----------------------------------------------------------------------------------

class _CallFailed(Exception):
    """This answer could not be judged (the run goes on); the message is the JudgeScore's error."""


@dataclass
class _Health:
    """What the workers have seen of the judge, shared so they give up together."""

    answered: bool = False
    timeouts: int = 0


def _retry_delay(attempt: int, headers: httpx.Headers | None) -> float:
    """The server's Retry-After(-ms) up to a minute, else 0.5 s doubling to 8 s, with jitter."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            wait = float((headers or {}).get(name, "")) * scale
        except ValueError:
            continue
        if 0 < wait <= 60:
            return wait
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())


def _fatal_status(cfg: JudgeConfig, status: int) -> JudgeFailed:
    """401/403/404: every answer would fail the same way. The server's message is left out (it may echo the key)."""
    url, var = cfg.base_url, "or unset ONBOARD_JUDGE_BASE_URL to evaluate without the judge"
    if status == 401:
        return JudgeFailed(f"judge at {url} rejected the API key (HTTP 401): set ONBOARD_JUDGE_API_KEY to a valid "
                           f"key for this endpoint, {var}.")
    if status == 403:
        return JudgeFailed(f"judge at {url} refused access to model {cfg.model!r} (HTTP 403): check that "
                           f"ONBOARD_JUDGE_API_KEY may use it, {var}.")
    return JudgeFailed(f"judge at {url} answered 404 for model {cfg.model!r}: check ONBOARD_JUDGE_MODEL (`curl "
                       f"{url.rstrip('/')}/models` lists them) and that ONBOARD_JUDGE_BASE_URL ends in /v1.")


def _content(resp: httpx.Response) -> str:
    try:
        return resp.json()["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError):
        raise _CallFailed("the reply is not an OpenAI chat completion (no choices[0].message.content)") from None


async def _ask(client: httpx.AsyncClient, cfg: JudgeConfig, prompt: str, health: _Health) -> str:
    """One chat completion at temperature 0, retried up to cfg.max_retries times.

    Raises:
        _CallFailed: this answer cannot be judged now (still timing out, 5xx/429, another 4xx).
        JudgeFailed: no answer can be (401/403/404, unreachable, nothing but timeouts from the start).
    """
    url = f"{cfg.base_url.rstrip('/')}/chat/completions"
    body = {"model": cfg.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    headers = {"Authorization": f"Bearer {cfg.api_key.get_secret_value()}"}
    for attempt in range(cfg.max_retries + 1):
        last, retry_headers = attempt == cfg.max_retries, None
        try:
            resp = await client.post(url, json=body, headers=headers)
        except httpx.TimeoutException:
            if not health.answered:
                health.timeouts += 1
                if health.timeouts >= FAIL_FAST_TIMEOUTS:
                    raise JudgeFailed(
                        f"judge at {cfg.base_url} has answered nothing: its first {health.timeouts} attempts each "
                        f"timed out after {cfg.timeout_s:g} s. Check that the server is up and has loaded its model, "
                        "or raise ONBOARD_JUDGE_TIMEOUT.") from None
            if last:
                raise _CallFailed(f"no reply within {cfg.timeout_s:g} s ({cfg.max_retries} retries)") from None
        except httpx.TransportError as e:
            if last and not health.answered:
                raise JudgeFailed(
                    f"judge at {cfg.base_url} is unreachable ({type(e).__name__}, {cfg.max_retries} retries): check "
                    "that the server is running and that ONBOARD_JUDGE_BASE_URL is right (it usually ends in /v1).",
                ) from None
            if last:
                raise _CallFailed(f"connection failed ({type(e).__name__}, {cfg.max_retries} retries)") from None
        else:
            health.answered = True
            status = resp.status_code
            if status == 200:
                return _content(resp)
            if status in (401, 403, 404):
                raise _fatal_status(cfg, status)
            retried = status in RETRY_STATUSES or status >= 500
            if last or not retried:
                after = f" after {cfg.max_retries} retries" if retried else ""
                said = " ".join(resp.text.replace(cfg.api_key.get_secret_value(), "***").split())[:200]
                raise _CallFailed(f"HTTP {status}{after}: {said}")
            retry_headers = resp.headers
        log.debug("judge attempt %d failed; retrying", attempt + 1)
        await asyncio.sleep(_retry_delay(attempt, retry_headers))
    raise AssertionError("unreachable: the last attempt returns or raises")


async def ajudge(cfg: JudgeConfig, items: Iterable[Item], cache_path: str | Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> list[JudgeScore]:
    """Async `judge`, for callers that already run an event loop."""
    items = list(items)
    version = prompt_version()
    keyed = {(s, q.id, answer_sha(a)): (s, q, a) for s, q, a in items}  # one request per distinct answer
    path = Path(cache_path) if cache_path is not None else None
    replies = read_cache(path, cfg.model, version) if path else {}
    todo = [k for k in keyed if k not in replies]
    log.info("judge %s at %s: %d answers, %d already judged, %d to judge", cfg.model, cfg.base_url, len(keyed),
             len(keyed) - len(todo), len(todo))
    scores = {k: _score(k[0], k[1], replies[k]) for k in keyed if k in replies}
    done = len(scores)
    if progress:
        progress(done, len(keyed))
    if todo:
        pending, health = iter(todo), _Health()
        writer = JsonlAppender(path) if path else None
        limits = httpx.Limits(max_connections=cfg.concurrency)

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal done
            for key in pending:  # shared: each worker takes the next answer when it is free
                system, q, a = keyed[key]
                try:
                    reply = await _ask(client, cfg, render(q, a), health)
                except _CallFailed as e:
                    scores[key] = JudgeScore(system=system, item=q.id, error=str(e))
                else:
                    scores[key] = _score(system, q.id, reply)
                    if writer and scores[key].ok:
                        writer.append({"v": CACHE_VERSION, "system": system, "item": q.id, "answer_sha": key[2],
                                       "model": cfg.model, "prompt_version": version, "reply": reply})
                done += 1
                if progress:
                    progress(done, len(keyed))

        try:
            async with httpx.AsyncClient(timeout=cfg.timeout_s, limits=limits) as client:
                await run_all([worker(client) for _ in range(min(cfg.concurrency, len(todo)))])
        finally:
            if writer:
                writer.close()
    out = [scores[(s, q.id, answer_sha(a))] for s, q, a in items]
    failed = sum(not s.ok for s in out)
    if failed:
        log.warning("judge: %d of %d answers not scored (first: %s)", failed, len(out),
                    next(s.error for s in out if not s.ok))
    return out


def judge(cfg: JudgeConfig, items: Iterable[Item], cache_path: str | Path | None = None,
          progress: Callable[[int, int], None] | None = None) -> list[JudgeScore]:
    """Score each answer's correctness, faithfulness and tone (1-5) with the judge model.

    Args:
        cfg: the endpoint, usually `JudgeConfig.from_env()`.
        items: (system, question, answer) for each greedy answer to judge; the answer's contexts are
            the sources its faithfulness is judged against.
        cache_path: append-only JSONL (e.g. reports/<run>/judge.jsonl); answers scored there before, by the
            same judge model and prompt, are not sent again. None: no cache.
        progress: called with (answers done, answers total).

    Returns:
        One JudgeScore per item, in order; a failed call or unreadable reply has `error` and no scores.

    Raises:
        JudgeFailed: the endpoint rejects the key or model, is unreachable, or never answers.
    """
    return asyncio.run(ajudge(cfg, items, cache_path, progress))


def summarise(scores: Sequence[JudgeScore], rule_scores: dict[str, dict[str, dict[str, float | None]]],
              cfg: JudgeConfig) -> JudgeSummary:
    """Per system: mean scores with intervals, counts, and agreement with the rule metrics
    (`evaluation.judge_summary.summarise`), recorded with this judge's model and prompt version."""
    return _summarise(scores, rule_scores, cfg.model, prompt_version())
