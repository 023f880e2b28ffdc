"""answers.jsonl: every generated answer, appended and flushed as it is made, so an interrupted
evaluation resumes from the answers already written (a line cut short by a kill is dropped and asked again)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from evaluation.results import Answer
from rag.io import atomic_write
from serving.engines.base import Engine, SamplingParams


class AnswerLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.done: dict[tuple, Answer] = {}
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            good = []
            for line in lines:
                try:
                    a = Answer.model_validate_json(line)
                except ValueError:  # only a kill mid-write leaves one: the last line
                    continue
                self.done[a.key] = a
                good.append(line)
            if len(good) != len(lines):
                atomic_write(self.path, "".join(f"{x}\n" for x in good))
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def has(self, system: str, kind: str, item: str, repeat: int = 0) -> bool:
        return (system, kind, item, repeat) in self.done

    def add(self, answer: Answer) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(answer.model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done[answer.key] = answer


async def ask(engine: Engine, messages: list[dict], params: SamplingParams) -> dict:
    """Stream one answer, timing the first piece of text and the whole; the fields of an `Answer`."""
    t0 = time.perf_counter()
    ttft, parts, prompt, completion = None, [], None, None
    async for d in engine.stream(messages, params):
        if d.text:
            ttft = ttft if ttft is not None else time.perf_counter() - t0
            parts.append(d.text)
        if d.finish_reason:
            prompt, completion = d.prompt_tokens, d.completion_tokens
    return {"text": "".join(parts), "ttft_s": ttft, "total_s": time.perf_counter() - t0,
            "prompt_tokens": prompt, "completion_tokens": completion}
