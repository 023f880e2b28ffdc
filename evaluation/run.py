"""`onboard eval`: the four systems (base, base+RAG, tuned, tuned+RAG) asked the same held-out
questions and edge cases with the same decoding, then scored and reported.

    onboard eval --workspace .onboard --base BASE --model .onboard/models/merged

Reads top to bottom: load the questions and the edge cases, open the serving retriever, then for each
model load its engine through serving (`serving.engines.load_engine`: the transformers engine, or the remote
one for a model served elsewhere, --base-url/--model-url), ask every question (after its example's system
prompt, without any context baked into it) with and without retrieval (the serving code path,
`serving.context.with_context`, same k), greedy for the scored answer and sampled `repeats` times for
consistency; each answer is appended to answers.jsonl as it is made, so a rerun resumes. Then score
(`evaluation.score`) and write the report (`evaluation.report`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evaluation.answers import AnswerLog, ask
from evaluation.errors import EvaluationError
from evaluation.questions import DeclineQuestion, Question, load_declines, load_questions
from evaluation.results import SYSTEMS, Answer, EvalReport, GateResult, Provenance
from rag.workspace import Workspace
from serving.engines.base import SamplingParams

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""progress(what, done, total): what is the system being asked."""


@dataclass(frozen=True)
class _Items:
    """What every system is asked: the held-out questions, the edge cases, the questions to decline."""

    questions: list[Question]
    cases: list
    declines: list[DeclineQuestion]


@dataclass(frozen=True)
class _Retrieval:
    """How the +rag systems get their context: the serving retriever, k and prompts."""

    retriever: object | None
    k: int
    prompts: object


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
    concurrency: int | None = Field(None, ge=1)
    """Answers asked at once: the transformers engine generates them as one batch, a server gets them as
    concurrent requests (1: one at a time). Latencies are measured under this load. None: as many as the local
    engine batches (ServeSettings.max_batch, 8), one at a time from a server."""
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
    base_url: str | None = None
    """Ask the base model through an OpenAI-compatible server (llama.cpp, vLLM, another Onboard without
    retrieval) at this API base (with its /v1) instead of loading `base_model` here; the serving remote engine."""
    tuned_url: str | None = None
    """Likewise for the tuned model (e.g. its `onboard export gguf` served by llama.cpp)."""
    judge: bool | None = None
    """Score the answers with the LLM judge set by ONBOARD_JUDGE_BASE_URL/_MODEL/_API_KEY: None when it is
    configured, True to require it (an error when it is not), False never."""
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
    from rag.prompt import load_prompts

    if any(s.startswith("tuned") for s in cfg.systems) and cfg.tuned_model is None:
        raise EvaluationError("the tuned systems need the fine-tuned model: pass --model DIR (a merged model), or "
                              "--systems base,base+rag.")
    from evaluation.gate import GateRule

    rule = GateRule.load(cfg.gate_rule)  # a bad rule file fails now, not after hours of answers
    judge_cfg = _judge_config(cfg.judge)  # likewise a half-configured judge
    test_file = cfg.test_file or cfg.ws.test_file("sft")
    questions = load_questions(test_file, cfg.limit)
    declines = load_declines(test_file)[: cfg.limit]
    cases = load_suite(cfg.edge_suite) if cfg.edge else []
    prompts = load_prompts(cfg.workspace)  # the edge cases are asked as the server would ask them
    k = cfg.k or _trained_k(cfg.tuned_model)
    retriever = _retriever(cfg) if any(s.endswith("+rag") for s in cfg.systems) else None
    provenance = Provenance(
        base_model=str(cfg.base_model), tuned_model=str(cfg.tuned_model) if cfg.tuned_model else None,
        tuned_fingerprint=_fingerprint(cfg.tuned_model), test_file=str(test_file),
        test_sha256=hashlib.sha256(test_file.read_bytes()).hexdigest(), questions=len(questions),
        retrieval=_retrieval_settings(retriever, k),
        sampling={"prompt": "example-history", "edge_prompt": prompts.version, "scored": "greedy",
                  "max_new_tokens": cfg.max_new_tokens,
                  "repeats": cfg.repeats, "temperature": cfg.temperature, "top_p": cfg.top_p},
        engines={"base": cfg.base_url or "transformers", "tuned": cfg.tuned_url or "transformers"})
    answers = AnswerLog(cfg.out_dir / "answers.jsonl")
    _check_same_run(cfg.out_dir, provenance, answers)
    at_once = [asyncio.run(_ask_all(cfg, model, url, systems, _Items(questions, cases, declines),
                                    _Retrieval(retriever, k, prompts), answers, progress))
               for model, url, systems in _by_model(cfg)]
    # the load the latencies were measured under (None: every answer was already there)
    provenance.concurrency = max((n for n in at_once if n), default=None)
    report = score(questions, cases, answers.done, cfg.systems, provenance,
                   created=datetime.now(timezone.utc).isoformat(timespec="seconds"), prompts=prompts, declines=declines)
    report.gate = _gate(report, rule)
    if judge_cfg is not None:
        report.judge = _judged(judge_cfg, questions, answers, cfg, progress)
    write_report(report, cfg.out_dir)
    return report


def _judge_config(wanted: bool | None):
    if wanted is False:
        return None
    from evaluation.judge import BadJudge, JudgeConfig

    judge_cfg = JudgeConfig.from_env()
    if judge_cfg is None and wanted:
        raise BadJudge("--judge needs a judge: set ONBOARD_JUDGE_BASE_URL (an OpenAI-compatible endpoint, usually "
                       "ending in /v1) and ONBOARD_JUDGE_MODEL, and ONBOARD_JUDGE_API_KEY if it needs one.")
    return judge_cfg


def _judged(judge_cfg, questions: list[Question], answers: AnswerLog, cfg: EvalConfig, progress: Progress | None):
    """The judge's scores of every system's scored (greedy) answers, cached in judge.jsonl so a rerun asks only
    for new answers, with its agreement with the rule metrics on the same answers."""
    from evaluation.judge import judge, summarise
    from evaluation.score import per_question

    items = [(s, q, answers.done[(s, "question", q.id, 0)]) for s in cfg.systems for q in questions]
    rules = {s: {q.id: per_question(q, a) for s2, q, a in items if s2 == s} for s in cfg.systems}
    scores = judge(judge_cfg, items, cfg.out_dir / "judge.jsonl",
                   (lambda done, total: progress("judge", done, total)) if progress else None)
    return summarise(scores, rules, judge_cfg)


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


def _by_model(cfg: EvalConfig) -> list[tuple[Path, str | None, list[str]]]:
    """Systems grouped by the model they run on (and the server that serves it, if any), so each model is
    loaded once."""
    groups = [(cfg.base_model, cfg.base_url, [s for s in cfg.systems if s.startswith("base")]),
              (cfg.tuned_model, cfg.tuned_url, [s for s in cfg.systems if s.startswith("tuned")])]
    return [(m, u, s) for m, u, s in groups if s]


async def _ask_all(cfg: EvalConfig, model: Path, url: str | None, systems: list[str], items: _Items,
                   rag_setup: _Retrieval, answers: AnswerLog, progress: Progress | None) -> int | None:
    """Ask what `answers` lacks; returns how many were asked at once (None: nothing was asked)."""
    from evaluation.edge_cases import planted_messages
    from serving.context import with_context
    from serving.engines import load_engine
    from serving.settings import ServeSettings

    greedy = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0)
    sampled = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    todo = [(s, "question", q.id, r, [*q.history, {"role": "user", "content": q.question}], None)
            for s in systems for q in items.questions for r in range(1 + cfg.repeats)]
    todo += [(s, "edge", c.id, 0, [{"role": "user", "content": c.question}], c) for s in systems for c in items.cases]
    todo += [(s, "decline", d.id, 0, [{"role": "user", "content": d.question}], d)
             for s in systems for d in items.declines]
    todo = [t for t in todo if not answers.has(*t[:4])]
    if not todo:
        return None
    # greedy answers together, then the sampled ones: a batch holds answers decoded one way
    todo.sort(key=lambda t: (systems.index(t[0]), t[3] > 0))
    settings = ServeSettings(model=model, engine="remote", remote_url=url) if url else \
        ServeSettings(model=model, engine="transformers", **({"max_batch": cfg.concurrency} if cfg.concurrency else {}))
    engine = await asyncio.to_thread(load_engine, settings)
    window = cfg.concurrency or getattr(engine, "max_batch", 1)
    done = 0

    async def one(system: str, kind: str, item: str, repeat: int, asked: list[dict], case) -> None:
        nonlocal done
        rag = system.endswith("+rag")
        if kind == "decline" and rag and case.context_messages:  # unanswerable: its own answer-less context
            messages, hits = case.context_messages, []
        else:
            messages, hits = await with_context(asked, rag_setup.retriever if rag else None, rag_setup.k,
                                                rag_setup.prompts)
        if kind == "edge" and case.planted is not None:
            messages = planted_messages(case, hits, prompts=rag_setup.prompts)
        got = await ask(engine, messages, greedy if repeat == 0 else sampled)
        answers.add(Answer(system=system, kind=kind, item=item, repeat=repeat, **got,
                           retrieved=[h.chunk_id for h in hits], contexts=[h.text for h in hits],
                           sources=[" > ".join(x for x in (h.source, h.heading_path) if x) for h in hits]))
        done += 1
        if progress:
            progress(f"{model.name}: {system}", done, len(todo))

    try:
        for start in range(0, len(todo), window):  # each answer is saved as it comes: a crash loses none
            await asyncio.gather(*(one(*t) for t in todo[start:start + window]))
    finally:
        await engine.close()
    return window


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
    """Answers already in the folder are reused only when each was made the way this run would make it: the
    same base model, questions and decoding for every answer, the same retrieval for the +rag ones and the
    same tuned weights for the tuned ones. So the base systems can be asked first and a tuned model added
    later (or more sampled repeats asked), but answers of another model are never mixed in."""
    from rag.io import atomic_write_json

    marker = out_dir / "provenance.json"
    if answers.done and marker.exists():
        old = Provenance.model_validate_json(marker.read_text(encoding="utf-8"))
        written = {key[0] for key in answers.done}
        clashes = _clashes(old, provenance, written)
        if clashes:
            raise EvaluationError(f"{out_dir} holds answers of another evaluation ({'; '.join(clashes)}): pass "
                                  "--name NEW for a new report, or delete that folder.")
        if provenance.tuned_fingerprint is None and any(s.startswith("tuned") for s in written):
            # a base-only rerun keeps the record of which tuned model the tuned answers came from
            provenance = provenance.model_copy(update={"tuned_model": old.tuned_model,
                                                       "tuned_fingerprint": old.tuned_fingerprint})
        if not provenance.retrieval and any(s.endswith("+rag") for s in written):
            provenance = provenance.model_copy(update={"retrieval": old.retrieval})
    atomic_write_json(marker, provenance.model_dump())


def _decoding(p: Provenance) -> dict:
    """What shapes every answer (the number of sampled repeats only adds answers, so it is not part of it)."""
    return {k: v for k, v in p.sampling.items() if k != "repeats"}


def _clashes(old: Provenance, new: Provenance, written: set[str]) -> list[str]:
    """What differs between the run that wrote `written` systems' answers and this one, in words."""
    out = []
    if (old.base_model, old.test_sha256) != (new.base_model, new.test_sha256):
        out.append("another base model or other questions")
    if _decoding(old) != _decoding(new):
        out.append(f"decoding {_decoding(old)} -> {_decoding(new)}")
    for side in ("base", "tuned"):
        was, now = (getattr(p, "engines", None) or {} for p in (old, new))
        before = was.get(side) or "transformers"  # reports from before the remote engine was selectable
        if any(s.startswith(side) for s in written) and before != now.get(side):
            out.append(f"{side} answered by {before}, now by {now.get(side)}")
    if any(s.endswith("+rag") for s in written) and new.retrieval and old.retrieval != new.retrieval:
        out.append(f"retrieval {old.retrieval} -> {new.retrieval}")
    if any(s.startswith("tuned") for s in written) and new.tuned_fingerprint is not None and \
            old.tuned_fingerprint != new.tuned_fingerprint:
        out.append(f"another tuned model ({old.tuned_model} -> {new.tuned_model})")
    return out
