"""The feedback file the server records and DPO learns from.

One JSON object per line in `<workspace>/feedback/feedback.jsonl` (appended by `onboard serve` when a
user rates or corrects an answer; users may also write it themselves):

    {"id": "fb_01",                       # unique id of this feedback event
     "created": "2026-11-23T10:00:00Z",   # ISO 8601, UTC
     "model": "merged",                   # the model that answered
     "messages": [{"role": "system", "content": "...context as served..."},
                  {"role": "user", "content": "How long do I have to return an item?"}],
     "response": "You have 14 days.",     # what the model answered
     "rating": "down",                    # "up", "down" or null
     "correction": "30 days from delivery.",  # optional: the answer the user wanted
     "sources": ["<chunk id>", ...]}      # optional: the chunks the answer was given with

`messages` is the prompt exactly as the model saw it (system message with the retrieved context
included), so a preference pair trains on the served layout. Pairs are made two ways:
- a correction: chosen = correction, rejected = response (any rating);
- the same prompt answered once with "up" and once with "down": chosen = up, rejected = down.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from training.errors import BadDataset

RATINGS = ("up", "down", None)


@dataclass
class FeedbackResult:
    triples: list[dict]
    by_kind: dict = field(default_factory=dict)
    unused: int = 0
    """Records that made no pair (an "up" with no "down" for the same prompt, no correction)."""


def _prompt_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _check(record, where: str) -> dict:
    if not isinstance(record, dict):
        raise BadDataset(f"{where}: expected a JSON object.")
    msgs = record.get("messages")
    if not isinstance(msgs, list) or not msgs or msgs[-1].get("role") != "user":
        raise BadDataset(f"{where}: 'messages' must be the prompt as served, ending with the user's turn.")
    if not isinstance(record.get("response"), str):
        raise BadDataset(f"{where}: 'response' (the model's answer) is missing.")
    if record.get("rating") not in RATINGS:
        raise BadDataset(f"{where}: 'rating' must be \"up\", \"down\" or null (got {record.get('rating')!r}).")
    if record.get("correction") is not None and not str(record["correction"]).strip():
        raise BadDataset(f"{where}: 'correction' is empty; leave it out or write the wanted answer.")
    return record


def read_feedback(path: str | Path) -> list[dict]:
    """Every record of a feedback file, checked.

    Raises:
        BadDataset: a broken line, named by file:line.
    """
    path = Path(path)
    records = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(_check(json.loads(line), f"{path}:{n}"))
            except json.JSONDecodeError as e:
                raise BadDataset(f"{path}:{n}: broken JSON ({e.msg}); fix or delete the line.") from None
    return records


def feedback_triples(path: str | Path) -> FeedbackResult:
    """Preference triples (TRL conversational form) from a feedback file."""
    records = read_feedback(path)
    triples, used = [], set()
    by_prompt: dict[str, dict[str, list[int]]] = {}
    for i, r in enumerate(records):
        key = _prompt_key(r["messages"])
        if r.get("correction"):
            triples.append(_triple(r["messages"], r["correction"], r["response"], "feedback-correction", r, key))
            used.add(i)
        if r.get("rating") in ("up", "down"):
            by_prompt.setdefault(key, {"up": [], "down": []})[r["rating"]].append(i)
    for key, rated in by_prompt.items():
        for up, down in zip(rated["up"], rated["down"], strict=False):
            if records[up]["response"].strip() != records[down]["response"].strip():
                triples.append(_triple(records[up]["messages"], records[up]["response"], records[down]["response"],
                                       "feedback-pair", records[down], key))
                used.update((up, down))
    kinds: dict[str, int] = {}
    for t in triples:
        kinds[t["meta"]["rule"]] = kinds.get(t["meta"]["rule"], 0) + 1
    return FeedbackResult(triples, kinds, len(records) - len(used))


def _triple(prompt: list[dict], chosen: str, rejected: str, rule: str, record: dict, key: str) -> dict:
    return {
        "prompt": [dict(m) for m in prompt],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "meta": {"rule": rule, "feedback_id": record.get("id"), "model": record.get("model"), "prompt_key": key[:16],
                 "retrieved": record.get("sources") or []},
    }
