"""What every engine provides. The app talks only to this interface."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]


@dataclass
class Delta:
    """A piece of streamed text; the last one carries the finish reason and token counts."""

    text: str
    finish_reason: Literal["stop", "length"] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Engine(Protocol):
    def generate(self, messages: list[dict], params: SamplingParams) -> Generation: ...

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[Delta]: ...
