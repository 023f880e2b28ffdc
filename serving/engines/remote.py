"""An engine that forwards every generation to an OpenAI-compatible server: vLLM on a GPU box, a
llama.cpp server, or another Onboard. This server keeps retrieval, the API and its errors; the
upstream only generates.

Messages are sent as this server built them (RAG context included) with `stream`, `max_tokens`,
`temperature` and `top_p`, and only what the request asked beyond them (seed, stop, response_format, tools,
logprobs), so strict upstreams accept them. An Onboard upstream
retrieves too unless it runs without a workspace: point it at one that serves the bare model.

Token counting is exact or refused: `count_tokens` asks the upstream's vLLM-style `POST /tokenize`
(vLLM and Onboard have it); an upstream without it (llama.cpp's takes text, not messages; OpenAI has
none) raises `TokenCountUnavailable` rather than returning an estimate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
from pydantic import BaseModel, ValidationError

from serving.engines.base import Delta, FinishReason, Generation, SamplingParams, TokenLogprob
from serving.errors import BadRequest, ModelNotLoaded, TokenCountUnavailable, UpstreamError

log = logging.getLogger(__name__)


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[dict] | None = None


class _Top(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class _Logprob(_Top):
    top_logprobs: list[_Top] = []


class _Logprobs(BaseModel):
    content: list[_Logprob] | None = None


class _Choice(BaseModel):
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None
    logprobs: _Logprobs | None = None


class _Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class _Reply(BaseModel):
    """The part of an OpenAI chat completion (or streamed chunk) this engine reads."""

    choices: list[_Choice] = []
    usage: _Usage | None = None


class RemoteEngine:
    """Log probabilities are asked of the upstream and relayed; one that returns none when asked is an
    UpstreamError."""

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, timeout: float = 600.0):
        """
        Args:
            url: the upstream's OpenAI API base, with its /v1 (http://host:8000/v1).
            model: the model id sent upstream; None: the upstream's only model, once `check` has run.
            api_key: bearer token; kept in the client's headers, never logged.
            timeout: seconds to wait for a reply or for the next streamed piece.
        """
        self.url = url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=self.url, headers=headers,
                                         timeout=httpx.Timeout(timeout, connect=10.0))
        self._headers = headers

    def check(self) -> None:
        """Blocking, for start-up: the upstream answers /models and serves `model`.

        Raises:
            UpstreamError: it cannot be reached or does not answer like an OpenAI server.
            ModelNotLoaded: it does not serve `model`.
        """
        try:
            r = httpx.get(f"{self.url}/models", headers=self._headers, timeout=10.0)
            r.raise_for_status()
            data = r.json()["data"]
            ids = [m["id"] for m in data]
            chat = [m["id"] for m in data if m.get("kind") != "embedding"]  # an Onboard upstream marks its embedder
        except httpx.HTTPError as e:
            raise UpstreamError(f"the upstream {self.url} did not answer GET /models ({e}). Is it running, and "
                                "is ONBOARD_REMOTE_URL its API base with /v1?") from None
        except (ValueError, KeyError, TypeError):
            raise UpstreamError(f"the upstream {self.url}/models is not an OpenAI model list.") from None
        if self.model is not None and self.model not in ids:
            raise ModelNotLoaded(f"the upstream {self.url} serves {ids}, not {self.model!r}; set "
                                 "ONBOARD_REMOTE_MODEL to one of them.")
        if self.model is None:  # requests name their model, as OpenAI requires: the upstream's only chat model
            if len(chat) != 1:
                raise ModelNotLoaded(f"the upstream {self.url} serves {ids}: set ONBOARD_REMOTE_MODEL to the one "
                                     "to forward to.")
            self.model = chat[0]
        log.info("forwarding generations to %s (serves %s)", self.url, ids)

    # ---- the Engine interface
    async def generate(self, messages: list[dict], params: SamplingParams) -> Generation:
        try:
            r = await self._client.post("/chat/completions", json=self._body(messages, params, stream=False))
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        if r.status_code >= 400:
            raise self._refused(r.status_code, r.text)
        reply = self._parse(r.text)
        if not reply.choices or reply.choices[0].message is None:
            raise UpstreamError(f"the upstream {self.url} answered without a choice.")
        if reply.usage is None:
            raise UpstreamError(f"the upstream {self.url} answered without usage (token counts).")
        choice = reply.choices[0]
        calls = _tool_calls(choice.message.tool_calls)
        return Generation(choice.message.content or "", reply.usage.prompt_tokens, reply.usage.completion_tokens,
                          self._finish(choice.finish_reason), self._logprobs(choice, params), calls)

    async def stream(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[Delta]:
        body = self._body(messages, params, stream=True)
        finish: FinishReason | None = None
        usage: _Usage | None = None
        calls: dict[int, dict] = {}
        """The upstream's streamed tool calls by index (name and arguments as their fragments add up): sent whole
        on the last delta, as the transformers engine sends its calls."""
        try:
            # Leaving this block (done, closed, or cancelled because our client went away) closes the
            # upstream connection, which stops the upstream's generation too.
            async with self._client.stream("POST", "/chat/completions", json=body) as r:
                if r.status_code >= 400:
                    raise self._refused(r.status_code, (await r.aread()).decode(errors="replace"))
                async for data in _sse_data(r):
                    if data == "[DONE]":
                        break
                    chunk = self._parse(data)
                    usage = chunk.usage or usage
                    for c in chunk.choices[:1]:
                        if c.delta is not None and c.delta.content:
                            yield Delta(c.delta.content, logprobs=self._logprobs(c, params))
                        for part in (c.delta.tool_calls if c.delta is not None else None) or []:
                            _gather(calls, part)
                        if c.finish_reason is not None:
                            finish = self._finish(c.finish_reason)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        if finish is None:
            raise UpstreamError(f"the upstream {self.url} ended the stream without a finish reason.")
        yield Delta("", finish, usage and usage.prompt_tokens, usage and usage.completion_tokens,
                    tool_calls=_tool_calls([calls[i] for i in sorted(calls)]))

    async def count_tokens(self, messages: list[dict]) -> int:
        root = self.url.removesuffix("/v1")  # vLLM serves /tokenize beside /v1, not under it
        body = {"messages": messages, "add_generation_prompt": True, **({"model": self.model} if self.model else {})}
        try:
            r = await self._client.post(f"{root}/tokenize", json=body)
        except httpx.HTTPError as e:
            raise self._unreachable(e) from None
        try:
            count = r.json()["count"] if r.status_code < 400 else None
        except (ValueError, KeyError, TypeError):
            count = None
        if not isinstance(count, int):
            raise TokenCountUnavailable(
                f"the upstream {self.url} cannot count chat tokens (POST {root}/tokenize answered "
                f"{r.status_code}); only vLLM-style upstreams (vLLM, Onboard) can. No estimate is given.")
        return count

    async def ready(self) -> str | None:
        try:
            r = await self._client.get("/models", timeout=5.0)
        except httpx.HTTPError as e:
            return f"the upstream {self.url} did not answer GET /models ({type(e).__name__})"
        return None if r.status_code < 400 else f"the upstream {self.url} answered GET /models with {r.status_code}"

    async def close(self) -> None:
        await self._client.aclose()

    # ---- helpers
    def _body(self, messages: list[dict], params: SamplingParams, stream: bool) -> dict:
        body = {"messages": messages, "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                "top_p": params.top_p, "stream": stream}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.response_format is not None:
            body["response_format"] = params.response_format  # the upstream enforces it (vLLM, llama.cpp)
        if params.tools:
            body["tools"] = params.tools
            if params.tool_choice is not None:
                body["tool_choice"] = params.tool_choice
        if params.stop:
            body["stop"] = list(params.stop)
        if stream:
            body["stream_options"] = {"include_usage": True}
        if params.logprobs is not None:
            body.update(logprobs=True, top_logprobs=params.logprobs)
        if self.model is not None:
            body["model"] = self.model
        return body

    def _logprobs(self, choice: _Choice, params: SamplingParams) -> list | None:
        """The choice's token log probabilities (serving.engines.base.TokenLogprob) when the request asked for
        them; an upstream that sends none then is out of contract (never an answer without them)."""
        if params.logprobs is None:
            return None
        if choice.logprobs is None or choice.logprobs.content is None:
            raise UpstreamError(f"the upstream {self.url} returned no logprobs although they were asked for; "
                                "leave logprobs out, or use an upstream that returns them (vLLM, Onboard).")
        return [TokenLogprob(e.token, e.logprob, e.bytes or list(e.token.encode()),
                             [TokenLogprob(t.token, t.logprob, t.bytes or list(t.token.encode()))
                              for t in e.top_logprobs]) for e in choice.logprobs.content]

    def _parse(self, text: str) -> _Reply:
        try:
            data = json.loads(text)
        except ValueError:
            raise UpstreamError(f"the upstream {self.url} sent something that is not JSON: {text[:200]!r}") from None
        if isinstance(data, dict) and "error" in data:  # vLLM reports a failure mid-stream this way
            raise UpstreamError(f"the upstream {self.url} failed: {_message(data)}")
        try:
            return _Reply.model_validate(data)
        except ValidationError as e:
            raise UpstreamError(f"the upstream {self.url} answered out of the OpenAI shape: {e.errors()[0]}") from None

    def _finish(self, reason: str | None) -> FinishReason:
        if reason not in ("stop", "length", "tool_calls"):
            raise UpstreamError(f"the upstream {self.url} finished with {reason!r}; this server only relays "
                                "'stop', 'length' and 'tool_calls'.")
        return reason

    def _refused(self, status: int, text: str) -> Exception:
        try:
            message = _message(json.loads(text))
        except ValueError:
            message = text[:200]
        if status in (400, 422):  # the request itself (too long a prompt, a bad parameter)
            return BadRequest(f"the upstream refused the request: {message}")
        return UpstreamError(f"the upstream {self.url} answered {status}: {message}")

    def _unreachable(self, e: httpx.HTTPError) -> UpstreamError:
        return UpstreamError(f"the upstream {self.url} failed: {type(e).__name__}: {e}. Is it running?")


def _tool_calls(calls: list[dict] | None) -> list | None:
    """The upstream's OpenAI tool_calls as ToolCall objects (None: it called none)."""
    from serving.tools import ToolCall

    if not calls:
        return None
    return [ToolCall(c["function"]["name"], c["function"].get("arguments") or "{}", c.get("id") or "") for c in calls]


def _gather(calls: dict[int, dict], part: dict) -> None:
    """One streamed tool-call fragment (OpenAI's: the first of a call has its id and name, the later ones more
    of its arguments) added to its call."""
    call = calls.setdefault(part.get("index", 0), {"id": "", "function": {"name": "", "arguments": ""}})
    call["id"] = part.get("id") or call["id"]
    fn = part.get("function") or {}
    call["function"]["name"] += fn.get("name") or ""
    call["function"]["arguments"] += fn.get("arguments") or ""


def _message(data) -> str:
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", err))
    return str(err if err is not None else data)[:200]


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined with newlines; comments skipped)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    if lines:
        yield "\n".join(lines)
