"""What an evaluation produces, typed: the contract between the runner (`evaluation.run`), the report
(`evaluation.report`), the gate (`evaluation.gate`) and `onboard eval --compare`.

    answers.jsonl   one `Answer` per line, appended as each is generated (an interrupted run resumes)
    eval.json       the `EvalReport`: per-system summaries with confidence intervals, paired comparisons,
                    edge-case results, the worst answers, provenance and the gate's verdict

Every score is in [0, 1], higher is better, except latency (seconds).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.errors import BadContract

REPORT_SCHEMA_VERSION = 1
SYSTEMS: tuple[str, ...] = ("base", "base+rag", "tuned", "tuned+rag")
"""The four systems, in the order the report shows them."""

Kind = Literal["question", "edge", "decline"]


class Answer(BaseModel):
    """One system's answer to one question (or edge case), as generated; a line of answers.jsonl."""

    model_config = ConfigDict(extra="forbid")

    system: str
    kind: Kind
    item: str
    """The question's or edge case's id."""
    repeat: int = 0
    """0: greedy decoding (the scored answer); 1..n: sampled with production settings (consistency)."""
    text: str
    ttft_s: float | None = None
    """Seconds to the first piece of text (None: the answer was empty)."""
    total_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    retrieved: list[str] = Field(default_factory=list)
    """Chunk ids in rank order (empty for systems without retrieval)."""
    contexts: list[str] = Field(default_factory=list)
    """The retrieved chunks' texts, in the same order (what an `[n]` citation points at)."""
    sources: list[str] = Field(default_factory=list)
    """Where each retrieved chunk is from, readable ("returns.md > Return shipping costs"), same order."""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.system, self.kind, self.item, self.repeat)


class Interval(BaseModel):
    """A mean over questions with its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int


class Latency(BaseModel):
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    total_p50: float
    total_p95: float


class SystemSummary(BaseModel):
    name: str
    metrics: dict[str, Interval]
    """Per-question metrics averaged: facts, f1_char, f1_word, rouge_l, bleu, chrf, exact (short references
    only), hit_at_k and citation_support (systems with retrieval only)."""
    corpus: dict[str, float] = Field(default_factory=dict)
    """Corpus-level scores (bleu, chrf) over all answers."""
    latency: Latency
    edge_pass_rate: float | None = None
    edge_by_category: dict[str, float] = Field(default_factory=dict)
    consistency: float | None = None
    """Share of questions whose sampled answers state the same key facts (None: not measured)."""
    echo_rate: float | None = None
    """Share of the greedy answers to the held-out questions that repeat the question back (lower is better)."""
    decline_rate: float | None = None
    """Share of the held-out questions that must be declined (out-of-domain, unanswerable from their
    context) that were (None: the test split holds none)."""
    decline_by_kind: dict[str, float] = Field(default_factory=dict)
    """decline_rate per kind of question: "out-of-domain", "unanswerable"."""
    by_language: dict[str, dict[str, Interval]] = Field(default_factory=dict)
    """The headline metrics per question language ("en", "zh"), when the questions are in more than one."""


class Comparison(BaseModel):
    """A paired difference `a - b` on the same questions, with its bootstrap interval."""

    a: str
    b: str
    metric: str
    diff: float
    low: float
    high: float
    language: str | None = None
    """None: over all questions; "en", "zh": over that language's questions only."""

    @property
    def noise(self) -> bool:
        """The interval holds 0: the difference may be chance."""
        return self.low <= 0 <= self.high


class EdgeResult(BaseModel):
    system: str
    case: str
    category: str
    language: str
    passed: bool
    reason: str
    answer: str


class Worst(BaseModel):
    """One of a system's worst-scored answers, shown beside the reference and its sources."""

    item: str
    question: str
    reference: str
    answer: str
    score: float
    sources: list[str] = Field(default_factory=list)


class GateResult(BaseModel):
    passed: bool
    reasons: list[str]
    """Each failed condition with its numbers, or what passed, in words."""


class Provenance(BaseModel):
    model_config = ConfigDict(extra="allow")

    base_model: str
    tuned_model: str | None = None
    tuned_fingerprint: str | None = None
    """What identifies the tuned model's weights (the gate finds a model's last evaluation by it)."""
    test_file: str
    test_sha256: str
    questions: int
    retrieval: dict = Field(default_factory=dict)
    """Collection, embedding model, k and mode: the serving retriever's settings."""
    sampling: dict = Field(default_factory=dict)


JUDGE_SCORES = ("correctness", "faithfulness", "tone")
"""What the optional LLM judge scores, 1-5 each (`evaluation.judge`, rubric in evaluation/prompts/judge.md)."""


class JudgeScore(BaseModel):
    """The judge's scores for one answer, or why there are none (`error`)."""

    system: str
    item: str
    correctness: int | None = Field(default=None, ge=1, le=5)
    faithfulness: int | None = Field(default=None, ge=1, le=5)
    tone: int | None = Field(default=None, ge=1, le=5)
    reason: str | None = None
    """The judge's own one-line reason."""
    error: str | None = None
    """Why this answer has no scores: the call failed, or the reply did not parse (None when scored)."""

    @property
    def ok(self) -> bool:
        return self.error is None


class Correlation(BaseModel):
    rho: float | None
    """Spearman's rank correlation; None when n < 3 or a side is constant."""
    n: int
    """Answers with both a judge score and the rule metric."""


class Agreement(BaseModel):
    """The judge's correctness against the rule metrics, on the same answers."""

    facts: Correlation
    """With key-fact recall (answers to questions whose reference has key facts)."""
    f1_char: Correlation
    """With character-level token F1 against the reference."""
    pass_rate: float | None
    """Share of answers where judge (correctness >= 4) and rule (facts >= 0.5) agree on pass or fail."""
    pass_n: int


class SystemJudge(BaseModel):
    name: str
    scores: dict[str, Interval]
    """correctness, faithfulness, tone: mean over the answers scored (1-5, not 0-1), with a bootstrap interval."""
    scored: int
    failed: int
    failures: list[str] = Field(default_factory=list)
    """The first few failures as 'item: reason'."""
    agreement: Agreement


class JudgeSummary(BaseModel):
    model: str
    prompt_version: str
    systems: list[SystemJudge]
    agreement: Agreement
    """Over all systems' answers together (more answers than one system has)."""

    def system(self, name: str) -> SystemJudge | None:
        return next((s for s in self.systems if s.name == name), None)


class EvalReport(BaseModel):
    schema_version: int = REPORT_SCHEMA_VERSION
    created: str
    provenance: Provenance
    systems: list[SystemSummary]
    comparisons: list[Comparison] = Field(default_factory=list)
    edge: list[EdgeResult] = Field(default_factory=list)
    worst: dict[str, list[Worst]] = Field(default_factory=dict)
    gate: GateResult | None = None
    judge: JudgeSummary | None = None
    """The optional LLM judge's scores and its agreement with the rule metrics (None: no judge configured)."""

    def system(self, name: str) -> SystemSummary | None:
        return next((s for s in self.systems if s.name == name), None)

    @classmethod
    def read(cls, path: str | Path) -> EvalReport:
        """Raises: BadContract naming the file when it is unreadable or of another schema version."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BadContract(f"{path}: not a readable evaluation report ({e}); run `onboard eval` again.") from None
        if data.get("schema_version") != REPORT_SCHEMA_VERSION:
            raise BadContract(f"{path}: evaluation report schema_version {data.get('schema_version')!r}, this Onboard "
                              f"reads {REPORT_SCHEMA_VERSION}; run `onboard eval` again.")
        try:
            return cls.model_validate(data)
        except ValueError as e:
            raise BadContract(f"{path}: malformed evaluation report ({str(e).splitlines()[0]}).") from None
