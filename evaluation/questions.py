"""The held-out questions: the test split `onboard data build` wrote (whole documents the model never
trained on), read as question, reference answer, the chunk it came from and its key facts."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from pydantic import BaseModel, Field

from evaluation.errors import NoQuestions
from evaluation.metrics.facts import key_facts
from rag.prompt import strip_citations

log = logging.getLogger(__name__)


class Question(BaseModel):
    id: str
    """Stable across runs (a hash of question and reference), so answers already written are found again."""
    question: str
    reference: str
    language: str | None = None
    source: str | None = None
    chunk_id: str | None = None
    """The chunk the pair was made from: retrieval should find it (hit@k)."""
    facts: list[str] = Field(default_factory=list)
    """What a correct answer must state (`evaluation.metrics.facts.key_facts` of the reference)."""
    history: list[dict] = Field(default_factory=list)
    """The example's messages before the question (its system prompt, earlier turns): every system is asked
    the question after them, so with and without retrieval differ only in the retrieved context."""


class DeclineQuestion(BaseModel):
    """A held-out question the model must decline (training/data/decline.py made it): out-of-domain, asked
    as served (with what the retriever returns for it), or unanswerable, asked with systems with retrieval
    given the example's own context (the chunks near the question with the answer's section removed)."""

    id: str
    question: str
    kind: str
    """"out-of-domain" or "unanswerable"."""
    language: str | None = None
    context_messages: list[dict] = Field(default_factory=list)
    """Unanswerable: the example's messages up to and with the question, its context in the system prompt."""


def load_questions(test_file: Path, limit: int | None = None) -> list[Question]:
    """The chat examples of `test_file` as questions: the last user turn, the assistant's answer.

    Raises:
        NoQuestions: the file is missing, holds no chat example, or a line is not JSON (named by line).
    """
    test_file = Path(test_file)
    if not test_file.exists():
        raise NoQuestions(f"{test_file}: no test split. Run `onboard data build` (it holds out whole documents "
                          "for evaluation), or pass --questions FILE.jsonl.")
    out: list[Question] = []
    declines = 0
    for n, line in enumerate(test_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise NoQuestions(f"{test_file}:{n}: not JSON ({e}); check it with `onboard data validate`.") from None
        if (row.get("meta") or {}).get("declines"):
            declines += 1  # its reference is the decline, not facts: scored by `load_declines`
            continue
        q = _question(row)
        if q is not None:
            out.append(q)
        if limit and len(out) >= limit:
            break
    if declines:
        log.info("%s: %d examples that teach declining are scored as declines, not answers", test_file, declines)
    if not out:
        raise NoQuestions(f"{test_file}: no chat example (user question + assistant answer) to evaluate on. Rebuild "
                          "with more documents or a larger --test-fraction (`onboard data build --force`), or pass "
                          "--questions FILE.jsonl.")
    return out


def _question(row: dict) -> Question | None:
    messages = row.get("messages") or []
    users = [m["content"] for m in messages if m.get("role") == "user"]
    answers = [m["content"] for m in messages if m.get("role") == "assistant"]
    if not users or not answers:
        return None
    meta = row.get("meta") or {}
    question, reference = users[-1], strip_citations(answers[-1])  # "... [2]": the training answer cites its chunk
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    history = [{"role": m["role"], "content": m["content"]} for m in messages[:last_user]
               if m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)]
    qid = hashlib.sha256(f"{question}\x00{reference}".encode()).hexdigest()[:16]
    return Question(id=qid, question=question, reference=reference, language=meta.get("language"),
                    source=meta.get("source"), chunk_id=meta.get("chunk_id"), facts=key_facts(reference),
                    history=_without_context(history))


def _without_context(history: list[dict]) -> list[dict]:
    """The history with any retrieved context the dataset baked into its system prompt removed: retrieval is
    what the +rag systems add, so the others must not get it from the example."""
    from rag.prompt import strip_context

    return [{**m, "content": strip_context(m["content"])} if m["role"] == "system" else m for m in history]


def load_declines(test_file: Path) -> list[DeclineQuestion]:
    """The examples of `test_file` that teach declining (meta.declines), as questions to decline; [] when
    there are none or the file is missing (load_questions reports that)."""
    test_file = Path(test_file)
    if not test_file.exists():
        return []
    out = []
    for line in test_file.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        meta = row.get("meta") or {}
        messages = row.get("messages") or []
        if not meta.get("declines") or len(messages) < 2 or messages[-1].get("role") != "assistant":
            continue
        question = messages[-2]["content"]
        kind = "unanswerable" if meta.get("rule") == "unanswerable" else "out-of-domain"
        qid = hashlib.sha256(f"{kind}\x00{question}\x00{meta.get('chunk_id', '')}".encode()).hexdigest()[:16]
        out.append(DeclineQuestion(id=qid, question=question, kind=kind, language=meta.get("language"),
                                   context_messages=messages[:-1] if kind == "unanswerable" else []))
    return out
