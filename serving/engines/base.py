"""What every engine provides. The routes talk only to this interface.

Engines are async: a generation never blocks the event loop (a local engine runs it in a thread, a
remote one awaits the network), so /healthz and other requests are answered while a model generates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass
class SamplingParams:
    max_new_tokens: int = 256
    requested: bool = False
    """max_new_tokens is the client's own max_tokens: a prompt that leaves less room than that in the context
    window is refused (OpenAI's context_length_exceeded); otherwise (the server's default) it is cut to the room."""
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    seed: int | None = None
    """Sampling with the same seed gives the same answer (greedy decoding needs none)."""
    stop: tuple[str, ...] = ()
    """Strings that end the answer when generated; the answer is cut before the first one."""
    logprobs: int | None = None
    """None: no log probabilities; N: each generated token's, with the N most likely alternatives (0-20)."""
    response_format: dict | None = None
    """OpenAI's response_format (json_object, json_schema): the answer is generated to match it."""
    tools: list[dict] | None = None
    """OpenAI tools the model may call (rendered by its chat template; serving/tools.py)."""
    tool_choice: str | dict | None = None
    """auto (None), none, required, or {"type": "function", "function": {"name": ...}}: a call is forced."""


@dataclass
class TokenLogprob:
    token: str
    """The token's text; bytes that do not complete a character are written as \\xNN, as OpenAI does."""
    logprob: float
    bytes: list[int]
    top: list[TokenLogprob] = field(default_factory=list)
    """The `top_logprobs` most likely tokens at this position, most likely first (their own `top` empty)."""

    def openai(self) -> dict:
        entry = {"token": self.token, "logprob": self.logprob, "bytes": self.bytes}
        return {**entry, "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes}
                                          for t in self.top]}


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    logprobs: list | None = None
    """The answer's tokens with their log probabilities (TokenLogprob), when asked."""
    tool_calls: list | None = None
    """The tools the model called (serving.tools.ToolCall); `text` is then what it wrote before them."""


@dataclass
class Delta:
    """A piece of streamed text; the last one carries the finish reason and the token counts."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    """Set on the last delta; None when the engine cannot know (an upstream that reports no usage)."""
    completion_tokens: int | None = None
    logprobs: list | None = None
    """The tokens of `text` with their log probabilities, when asked (TokenLogprob)."""
    tool_calls: list | None = None
    """Tool calls (serving.tools.ToolCall), whole, on the last delta (the text before them streams as written)."""


class Engine(Protocol):
    """A chat model. Messages are OpenAI-style dicts (`role`, `content`), already holding any RAG context."""

    async def generate(self, messages: list[dict], params: SamplingParams) -> Generation:
        """The whole answer. Cancelling the awaiting task stops the generation."""
        ...

    def stream(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[Delta]:
        """The answer as it is generated (an async generator). Closing it, or cancelling the task that
        iterates it (the client went away), stops the generation."""
        ...

    async def count_tokens(self, messages: list[dict]) -> int:
        """Prompt tokens of `messages` as the model sees them (chat template and generation prompt
        included), exactly, or `TokenCountUnavailable`: never an estimate."""
        ...

    async def ready(self) -> str | None:
        """None when a request would be served now; otherwise why not (closed, upstream unreachable)."""
        ...

    async def close(self) -> None:
        """Release the model or the connection pool; the engine is unusable afterwards."""
        ...


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the first of the `stop` strings in it, and whether one was found."""
    at = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:at], True) if at >= 0 else (text, False)


def held_back(text: str, stop: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could begin a stop string, so a stream must hold them
    until the next piece shows whether the stop string follows."""
    return max((n for s in stop for n in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:n])),
               default=0)
