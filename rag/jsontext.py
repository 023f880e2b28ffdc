"""JSON objects in a model's free text: what an LLM judge, teacher or interviewer replied, with or without a
```json fence, prose around it, or a reasoning model's <think> block before it."""

from __future__ import annotations

import json
import re

THINK = re.compile(r"<think>.*?</think>", re.S)
"""A reasoning model's echoed thoughts, which may hold JSON-looking drafts."""


def json_objects(text: str) -> list[dict]:
    """Every top-level JSON object in the text, in order (inside ```json fences, after prose, or bare)."""
    decoder, out, i = json.JSONDecoder(), [], text.find("{")
    while i >= 0:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            out.append(obj)
        i = text.find("{", end)
    return out
