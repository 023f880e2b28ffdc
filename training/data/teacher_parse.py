"""Reading the teacher's replies: the questions it wrote, and the parts of a RAFT-style answer.

    ##Reason: ... ##begin_quote## <a sentence copied from the chunk> ##end_quote## ... ##Answer: <short answer>

Why forgiving: teacher models do not follow a format reliably. They wrap a question list in prose or a
```json fence, number it in English or Chinese styles (1. / (1) / 问题1：), echo their reasoning in
<think> blocks, or drop the ##Answer: marker. Parsing takes what it can and leaves judging the result
to grounding (rag/grounding.py), so one sloppy reply costs an item, not the run.
"""

from __future__ import annotations

import json
import re

_THINK = re.compile(r"<think>.*?</think>", re.S)  # reasoning models (Qwen3, R1) may echo their thoughts
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+\s*[.)、:：]|[(（]\d+[)）]|Q\d*\s*[:.：]|问题?\s*\d*\s*[:：])\s*")
_QUOTE = re.compile(r"##\s*begin_quote\s*##(.*?)##\s*end_quote\s*##", re.S | re.I)
_QUOTE_MARK = re.compile(r"##\s*(?:begin|end)_quote\s*##", re.I)
_ANSWER = re.compile(r"(?:##\s*Answer|<ANSWER>)\s*[:：]", re.I)
_REASON = re.compile(r"^\s*##\s*Reason\s*[:：]\s*", re.I)


def strip_think(text: str | None) -> str:
    """The reply without <think>...</think> blocks, stripped; "" for None (an empty completion)."""
    return _THINK.sub("", text or "").strip()


def _json_list(text: str) -> list[str] | None:
    """The questions in the first [...] of the text when it is a JSON list (of strings or of
    {"question": ...} objects), else None."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None
    if not isinstance(data, list):
        return None
    out = [d.get("question", "") if isinstance(d, dict) else d for d in data]
    return [str(q) for q in out]


def parse_questions(text: str | None, n: int) -> list[str]:
    """Questions from a reply: a JSON list, or numbered/bulleted lines. Lines that are not questions
    (no final ? or ？) are dropped, duplicates too; at most n are kept."""
    text = strip_think(text)
    candidates = _json_list(text)
    if candidates is None:
        candidates = [_BULLET.sub("", line) for line in text.splitlines()]
    out: list[str] = []
    for q in candidates:
        q = q.strip().strip("\"'“”‘’「」*`,").strip()
        if len(q) > 3 and q.endswith(("?", "？")) and q not in out:
            out.append(q)
    return out[:n]


def parse_answer(text: str | None) -> tuple[str, list[str], str]:
    """Split a RAFT reply into (reason, quotes, answer). Without an ##Answer: marker the whole reply,
    quote markers removed, is the answer."""
    text = strip_think(text)
    quotes = [q.strip() for q in _QUOTE.findall(text) if q.strip()]
    m = _ANSWER.search(text)
    reason, answer = (text[: m.start()], text[m.end() :]) if m else ("", text)
    answer = _QUOTE_MARK.sub("", answer)
    return _REASON.sub("", reason).strip(), quotes, answer.strip()
