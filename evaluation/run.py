"""`onboard eval`: the four systems (base, base+RAG, tuned, tuned+RAG) asked the same held-out
questions and edge cases with the same decoding, then scored and reported.

    onboard eval --workspace .onboard --base BASE --model .onboard/models/merged

Reads top to bottom: load the questions and the edge cases, open the serving retriever, then for each
model load its engine through serving (`serving.engines.load_engine`: the transformers engine, or a
remote one), ask every question with and without retrieval (the serving code path,
`serving.context.with_context`, same k), greedy for the scored answer and sampled `repeats` times for
consistency; each answer is appended to answers.jsonl as it is made, so a rerun resumes. Then score
(`evaluation.score`) and write the report (`evaluation.report`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evaluation.answers import AnswerLog, ask
from evaluation.errors import EvaluationError
from evaluation.questions import Question, load_questions
from evaluation.results import SYSTEMS, Answer, EvalReport, GateResult, Provenance
from rag.workspace import Workspace
from serving.engines.base import SamplingParams

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""progress(what, done, total): what is the system being asked."""


class EvalConfig(BaseModel):
    """What to evaluate, on which questions, and how to decode."""

    model_config = ConfigDict(frozen=True)

    workspace: Path
    base_model: Path
    """The base model folder (what was fine-tuned)."""
    tuned_model: Path | None = None
    """The merged model folder; None evaluates the base systems only."""
    systems: tuple[str, ...] = SYSTEMS
    test_file: Path | None = None
    """Held-out questions; default the workspace's SFT test split."""
    limit: int | None = Field(None, gt=0)
    """Ask only the first N questions (a quick look; intervals widen)."""
    k: int | None = Field(None, ge=1)
    """Chunks retrieved per question; default what the tuned model was trained with (its model card)."""
    max_new_tokens: int = Field(128, gt=0)
    repeats: int = Field(3, ge=0)
    """Sampled answers per question for consistency (0: not measured)."""
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    """Production sampling for the consistency answers (the scored answer is greedy)."""
    edge_suite: Path | None = None
    """Edge cases; default the bundled suite (evaluation/edge_cases/default.yaml)."""
    edge: bool = True
    name: str = "latest"
    """The report folder under WORKSPACE/reports/."""
    gate_rule: Path | None = None
    """The gate's rule (YAML/JSON, `evaluation.gate.GateRule`); default: tuned+rag not worse than base+rag on
    key facts beyond the noise, and its edge-case pass rate not lower."""

    @field_validator("systems")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in v if s not in SYSTEMS]
        if bad or not v:
            raise ValueError(f"unknown system(s) {bad}: choose from {', '.join(SYSTEMS)}")
        return v

    @property
    def ws(self) -> Workspace:
        return Workspace(self.workspace)

    @property
    def out_dir(self) -> Path:
        return self.ws.root / "reports" / self.name


def run(cfg: EvalConfig, progress: Progress | None = None) -> EvalReport:
    """Ask, score, report; returns the report (also written to `cfg.out_dir`).

    Raises:
        NoQuestions: no held-out questions.
        EvaluationError: a tuned system without --model, or answers in the folder from other models.
    """
    from evaluation.edge_cases import load_suite
    from evaluation.report import write_report
    from evaluation.score import score

    if any(s.startswith("tuned") for s in cfg.systems) and cfg.tuned_model is None:
        raise EvaluationError("the tuned systems need the fine-tuned model: pass --model DIR (a merged model), or "
                              "--systems base,base+rag.")
    from evaluation.gate import GateRule

    rule = GateRule.load(cfg.gate_rule)  # a bad rule file fails now, not after hours of answers
    test_file = cfg.test_file or cfg.ws.test_file("sft")
    questions = load_questions(test_file, cfg.limit)
    cases = load_suite(cfg.edge_suite) if cfg.edge else []
    k = cfg.k or _trained_k(cfg.tuned_model)
    retriever = _retriever(cfg) if any(s.endswith("+rag") for s in cfg.systems) else None
    provenance = Provenance(
        base_model=str(cfg.base_model), tuned_model=str(cfg.tuned_model) if cfg.tuned_model else None,
        tuned_fingerprint=_fingerprint(cfg.tuned_model), test_file=str(test_file),
        test_sha256=hashlib.sha256(test_file.read_bytes()).hexdigest(), questions=len(questions),
        retrieval=_retrieval_settings(retriever, k),
        sampling={"scored": "greedy", "max_new_tokens": cfg.max_new_tokens, "repeats": cfg.repeats,
                  "temperature": cfg.temperature, "top_p": cfg.top_p})
    answers = AnswerLog(cfg.out_dir / "answers.jsonl")
    _check_same_run(cfg.out_dir, provenance, answers)
    for model, systems in _by_model(cfg):
        asyncio.run(_ask_all(cfg, model, systems, questions, cases, retriever, k, answers, progress))
    report = score(questions, cases, answers.done, cfg.systems, provenance,
                   created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    report.gate = _gate(report, rule)
    write_report(report, cfg.out_dir)
    return report


def _gate(report: EvalReport, rule) -> GateResult | None:
    """The gate's verdict, when the report holds the two systems its rule compares (else None, said). A
    rule the answers cannot decide (too few questions with key facts to pair) fails: a model is never
    passed on faith."""
    from evaluation.errors import BadGateRule
    from evaluation.gate import apply_gate

    if report.system(rule.candidate) is None or report.system(rule.baseline) is None:
        log.warning("no gate verdict: the rule compares %s with %s and this evaluation lacks one of them",
                    rule.candidate, rule.baseline)
        return None
    try:
        return apply_gate(report, rule)
    except BadGateRule as e:
        return GateResult(passed=False, reasons=[f"cannot judge: {e}"])


def _by_model(cfg: EvalConfig) -> list[tuple[Path, list[str]]]:
    """Systems grouped by the model they run on, so each model is loaded once."""
    groups = [(cfg.base_model, [s for s in cfg.systems if s.startswith("base")]),
              (cfg.tuned_model, [s for s in cfg.systems if s.startswith("tuned")])]
    return [(m, s) for m, s in groups if s]


async def _ask_all(cfg: EvalConfig, model: Path, systems: list[str], questions: list[Question], cases: list,
                   retriever, k: int, answers: AnswerLog, progress: Progress | None) -> None:
    from evaluation.edge_cases import planted_messages
    from serving.context import with_context
    from serving.engines import load_engine
    from serving.settings import ServeSettings

    greedy = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0)
    sampled = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    todo = [(s, "question", q.id, r, q.question, None) for s in systems for q in questions
            for r in range(1 + cfg.repeats)]
    todo += [(s, "edge", c.id, 0, c.question, c) for s in systems for c in cases]
    todo = [t for t in todo if not answers.has(*t[:4])]
    if not todo:
        return
    engine = await asyncio.to_thread(load_engine, ServeSettings(model=model, engine="transformers"))
    try:
        for done, (system, kind, item, repeat, text, case) in enumerate(todo, 1):
            rag = system.endswith("+rag")
            messages, hits = await with_context([{"role": "user", "content": text}], retriever if rag else None, k)
            if case is not None and case.planted is not None:
                messages = planted_messages(case, hits)
            got = await ask(engine, messages, greedy if repeat == 0 else sampled)
            answers.add(Answer(system=system, kind=kind, item=item, repeat=repeat, **got,
                               retrieved=[h.chunk_id for h in hits], contexts=[h.text for h in hits],
                               sources=[" > ".join(x for x in (h.source, h.heading_path) if x) for h in hits]))
            if progress:
                progress(f"{model.name}: {system}", done, len(todo))
    finally:
        await engine.close()


def _trained_k(model: Path | None) -> int:
    """As many chunks as the tuned model's training prompts held (its card), else the serving default."""
    from rag import DEFAULT_K
    from rag.model_card import ModelCard

    card = ModelCard.read(model) if model is not None else None
    trained = card.rag.context_chunks if card is not None and card.rag is not None else 0
    return trained if trained > 0 else DEFAULT_K


def _retriever(cfg: EvalConfig):
    from rag import RagConfig, Retriever

    retriever = Retriever(RagConfig.from_workspace(cfg.workspace))
    retriever.count()  # no index: fail now, naming what to do, not after the base model has answered
    return retriever


def _retrieval_settings(retriever, k: int) -> dict:
    if retriever is None:
        return {}
    c = retriever.cfg
    return {"collection": c.collection, "embedding_model": retriever.embedder.name, "mode": c.mode, "k": k}


def _fingerprint(model: Path | None) -> str | None:
    if model is None:
        return None
    from evaluation.gate import model_fingerprint

    return model_fingerprint(model)


def _check_same_run(out_dir: Path, provenance: Provenance, answers: AnswerLog) -> None:
    """Answers already in the folder are reused only when they came from the same models and questions."""
    from rag.io import atomic_write_json

    marker = out_dir / "provenance.json"
    if answers.done and marker.exists():
        old = Provenance.model_validate_json(marker.read_text(encoding="utf-8"))
        same = (old.base_model, old.tuned_fingerprint, old.test_sha256, old.retrieval, old.sampling) == (
            provenance.base_model, provenance.tuned_fingerprint, provenance.test_sha256, provenance.retrieval,
            provenance.sampling)
        if not same:
            raise EvaluationError(f"{out_dir} holds answers of another evaluation (other models, questions or "
                                  "settings): pass --name NEW for a new report, or delete that folder.")
    atomic_write_json(marker, provenance.model_dump())
