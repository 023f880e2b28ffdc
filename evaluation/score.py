"""Score the answers: per question, per system, with bootstrap intervals and paired comparisons.

Per question (the greedy answer): `facts` (share of the reference's key facts stated; questions whose
reference has none are left out of it), `f1_char`, `f1_word`, `rouge_l`, `bleu`, `chrf` (sentence level),
`exact` (short references only), and for systems with retrieval `hit_at_k` (the question's source chunk
among the k retrieved), `cites_source` (when it was retrieved, the answer cites its number `[n]`) and
`citation_support` (the answer supported by the chunks it cites with `[n]`, or by all retrieved chunks
when it cites none). Per system: the echo rate (greedy answers that repeat the question back),
consistency (the sampled answers state the same key facts) and the decline rate on the held-out
questions that must be declined (out-of-domain, unanswerable from their context).
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.edge_cases import check
from evaluation.edge_cases.rules import declined
from evaluation.metrics import facts as F
from evaluation.metrics import retrieval as R
from evaluation.metrics import stats as S
from evaluation.metrics import text as T
from evaluation.questions import DeclineQuestion, Question
from evaluation.results import (
    Answer,
    Comparison,
    EdgeResult,
    EvalReport,
    Interval,
    Latency,
    Provenance,
    SystemSummary,
    Worst,
)
from rag.prompt import BUILT_IN, Prompts, strip_citations

COMPARED = (("tuned+rag", "base+rag"), ("tuned", "base"), ("base+rag", "base"), ("tuned+rag", "tuned"))
"""What each pair shows: fine-tuning with retrieval, fine-tuning alone, retrieval alone, retrieval on the tuned model."""
HEADLINE = ("facts", "f1_char", "rouge_l")
WORST = 10
BY_LANGUAGE = HEADLINE + ("hit_at_k",)
"""The metrics the report breaks down by question language."""


def per_question(q: Question, a: Answer) -> dict[str, float | None]:
    """The answer's scores against the question's reference. Citation markers ([2]) count for the citation
    check only: the text metrics compare the words."""
    rag = bool(a.contexts)
    numbers = R.cited_numbers(a.text)
    cited = [a.contexts[n - 1] for n in numbers if 0 < n <= len(a.contexts)]
    source = a.retrieved.index(q.chunk_id) + 1 if rag and q.chunk_id in a.retrieved else None
    text = strip_citations(a.text)
    return {
        "facts": F.fact_recall(text, q.facts) if q.facts else None,
        "f1_char": T.token_f1(text, q.reference, "char"),
        "f1_word": T.token_f1(text, q.reference, "word"),
        "rouge_l": T.rouge_l(text, q.reference),
        "bleu": T.sentence_bleu(text, q.reference),
        "chrf": T.sentence_chrf(text, q.reference),
        "exact": T.exact_match(text, q.reference) if T.is_short(q.reference) else None,
        "hit_at_k": R.hit_at_k(a.retrieved, q.chunk_id, len(a.retrieved)) if rag and q.chunk_id else None,
        "cites_source": float(source in numbers) if source else None,
        "citation_support": R.citation_support(a.text, "\n".join(cited or a.contexts)) if rag else None,
    }


def score(questions: Sequence[Question], cases: Sequence, answers: dict[tuple, Answer], systems: Sequence[str],
          provenance: Provenance, created: str, prompts: Prompts = BUILT_IN,
          declines: Sequence[DeclineQuestion] = ()) -> EvalReport:
    scores = {s: {q.id: per_question(q, answers[(s, "question", q.id, 0)]) for q in questions} for s in systems}
    summaries = [_summary(s, questions, cases, answers, scores[s]) for s in systems]
    for summary in summaries:
        _declines(summary, declines, answers)
    edge = [_edge(s, c, answers[(s, "edge", c.id, 0)], prompts) for s in systems for c in cases]
    for summary in summaries:
        mine = [e for e in edge if e.system == summary.name]
        if mine:
            summary.edge_pass_rate = sum(e.passed for e in mine) / len(mine)
            cats = sorted({e.category for e in mine})
            summary.edge_by_category = {c: sum(e.passed for e in mine if e.category == c) /
                                        sum(1 for e in mine if e.category == c) for c in cats}
    return EvalReport(created=created, provenance=provenance, systems=summaries,
                      comparisons=_comparisons(scores, systems) + _by_language(questions, scores, systems), edge=edge,
                      worst={s: _worst(s, questions, answers, scores[s]) for s in systems})


def _intervals(rows: list[dict], names) -> dict[str, Interval]:
    out = {}
    for name in names:
        values = [v[name] for v in rows if v[name] is not None]
        if values:
            mean, low, high = S.bootstrap_ci(values)
            out[name] = Interval(mean=mean, low=low, high=high, n=len(values))
    return out


def _summary(system: str, questions, cases, answers, scores: dict) -> SystemSummary:
    metrics = _intervals(list(scores.values()), next(iter(scores.values())).keys())
    languages = sorted({q.language for q in questions if q.language})
    by_language = {lang: _intervals([scores[q.id] for q in questions if q.language == lang], BY_LANGUAGE)
                   for lang in languages} if len(languages) > 1 else {}
    greedy = [answers[(system, "question", q.id, 0)] for q in questions]
    refs = [q.reference for q in questions]
    texts = [a.text for a in greedy]
    ttfts = [a.ttft_s for a in greedy if a.ttft_s is not None]
    totals = [a.total_s for a in greedy]
    latency = Latency(ttft_p50=S.percentile(ttfts, 50) if ttfts else None,
                      ttft_p95=S.percentile(ttfts, 95) if ttfts else None,
                      total_p50=S.percentile(totals, 50), total_p95=S.percentile(totals, 95))
    sampled = [(q, [a.text for r in range(1, 100) if (a := answers.get((system, "question", q.id, r)))])
               for q in questions if q.facts]
    sampled = [(q, t) for q, t in sampled if len(t) >= 2]
    consistency = sum(F.same_facts(t, q.facts) for q, t in sampled) / len(sampled) if sampled else None
    echo = sum(T.echoes(q.question, strip_citations(t)) for q, t in zip(questions, texts, strict=True)) / len(texts)
    return SystemSummary(name=system, metrics=metrics, corpus={"bleu": T.bleu(texts, refs), "chrf": T.chrf(texts, refs)},
                         latency=latency, consistency=consistency, echo_rate=echo, by_language=by_language)


def _declines(summary: SystemSummary, declines: Sequence[DeclineQuestion], answers: dict) -> None:
    """The share of the must-decline questions the system declined, overall and per kind."""
    if not declines:
        return
    said = [(d.kind, declined(answers[(summary.name, "decline", d.id, 0)].text) is not None) for d in declines]
    summary.decline_rate = sum(ok for _, ok in said) / len(said)
    summary.decline_by_kind = {k: sum(ok for kind, ok in said if kind == k) / sum(1 for kind, _ in said if kind == k)
                               for k in sorted({kind for kind, _ in said})}


def _edge(system: str, case, answer: Answer, prompts: Prompts) -> EdgeResult:
    r = check(case, answer.text, prompts.system_for(case.question))
    return EdgeResult(system=system, case=case.id, category=case.category, language=case.language, passed=r.passed,
                      reason=r.reason, answer=answer.text)


def _comparisons(scores: dict, systems: Sequence[str], ids: set[str] | None = None,
                 language: str | None = None) -> list[Comparison]:
    out = []
    for a, b in COMPARED:
        if a not in systems or b not in systems:
            continue
        for metric in HEADLINE:
            pairs = [(scores[a][q][metric], scores[b][q][metric]) for q in scores[a] if (ids is None or q in ids)
                     and scores[a][q][metric] is not None and scores[b][q][metric] is not None]
            if len(pairs) >= 2:
                diff, low, high = S.paired_bootstrap_diff([x for x, _ in pairs], [y for _, y in pairs])
                out.append(Comparison(a=a, b=b, metric=metric, diff=diff, low=low, high=high, language=language))
    return out


def _by_language(questions: Sequence[Question], scores: dict, systems: Sequence[str]) -> list[Comparison]:
    """The paired comparisons again within each question language, when there is more than one."""
    languages = sorted({q.language for q in questions if q.language})
    if len(languages) < 2:
        return []
    return [c for lang in languages
            for c in _comparisons(scores, systems, {q.id for q in questions if q.language == lang}, lang)]


def _worst(system: str, questions, answers, scores: dict) -> list[Worst]:
    def key(q: Question) -> float:
        s = scores[q.id]
        return s["facts"] if s["facts"] is not None else s["f1_char"]

    ranked = sorted(questions, key=key)[:WORST]
    return [Worst(item=q.id, question=q.question, reference=q.reference,
                  answer=answers[(system, "question", q.id, 0)].text, score=key(q),
                  sources=answers[(system, "question", q.id, 0)].sources) for q in ranked]
