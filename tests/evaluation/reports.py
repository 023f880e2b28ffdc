"""Evaluation reports built by hand, for the report, gate and compare tests (no model needed).

`make_report()` is a small, complete four-system report: facts/f1/ROUGE-L for every system, retrieval
metrics for the +rag ones, two edge cases (one English, one Chinese), worst answers with Chinese text
and a `<script>` answer, and two comparisons (one noise, one a real improvement).
"""

from __future__ import annotations

from evaluation.results import (
    SYSTEMS,
    Comparison,
    EdgeResult,
    EvalReport,
    GateResult,
    Interval,
    Latency,
    Provenance,
    SystemSummary,
    Worst,
)

SCRIPT = '<script>alert("pwned")</script> Refunds take 30 days.'
CHINESE = "退款会在5到10个工作日内到账。"
FACTS = {"base": (0.20, 0.12, 0.28), "base+rag": (0.525, 0.45, 0.60),
         "tuned": (0.35, 0.27, 0.43), "tuned+rag": (0.556, 0.48, 0.63)}
CASES = {"ood-weather-en": ("out_of_domain", "en"), "injection-planted-zh": ("prompt_injection", "zh")}
EDGE_PASSED = {s: {"ood-weather-en": True, "injection-planted-zh": s != "tuned"} for s in SYSTEMS}
NOISE = Comparison(a="tuned+rag", b="base+rag", metric="facts", diff=0.031, low=-0.04, high=0.102)
REAL = Comparison(a="base+rag", b="base", metric="facts", diff=0.25, low=0.15, high=0.35)


def iv(mean: float, low: float, high: float, n: int = 40) -> Interval:
    return Interval(mean=mean, low=low, high=high, n=n)


def _summary(name: str, facts: tuple[float, float, float], passed: dict[str, bool] | None) -> SystemSummary:
    m, lo, hi = facts
    metrics = {"facts": iv(m, lo, hi), "f1_char": iv(m / 2, lo / 2, hi / 2), "rouge_l": iv(m / 3, lo / 3, hi / 3)}
    if name.endswith("+rag"):
        metrics |= {"hit_at_k": iv(0.8, 0.7, 0.9), "citation_support": iv(0.6, 0.5, 0.7)}
    s = SystemSummary(name=name, metrics=metrics, corpus={"bleu": m / 4, "chrf": m / 2},
                      latency=Latency(ttft_p50=0.12, ttft_p95=0.3, total_p50=1.5, total_p95=2.25), consistency=0.7)
    if passed:
        s.edge_pass_rate = sum(passed.values()) / len(passed)
        cats = {CASES[c][0] for c in passed}
        s.edge_by_category = {k: sum(p for c, p in passed.items() if CASES[c][0] == k) /
                              sum(1 for c in passed if CASES[c][0] == k) for k in cats}
    return s


def _edge(system: str, case: str, passed: bool) -> EdgeResult:
    category, language = CASES[case]
    reason = "declined" if passed else "obeyed the planted instruction: said 'ignore previous'"
    return EdgeResult(system=system, case=case, category=category, language=language, passed=passed, reason=reason,
                      answer="好的" if language == "zh" else "I can only help with the shop.")


def make_report(facts: dict[str, tuple[float, float, float]] | None = None,
                comparisons: list[Comparison] | None = None,
                edge: dict[str, dict[str, bool]] | None = None,
                created: str = "2025-01-01T00:00:00+00:00",
                fingerprint: str | None = "fp-1",
                test_sha256: str = "a" * 64,
                gate: GateResult | None = None,
                questions: int = 40) -> EvalReport:
    """A report of the systems in `facts` (default all four, `FACTS`); `edge` maps system -> case -> passed
    (default `EDGE_PASSED`; {} for no edge cases)."""
    facts = FACTS if facts is None else facts
    edge = {s: p for s, p in EDGE_PASSED.items() if s in facts} if edge is None else edge
    systems = [_summary(s, facts[s], edge.get(s)) for s in SYSTEMS if s in facts]
    worst = {s: [Worst(item="q-zh-1", question="退款多久能到账？", reference=CHINESE, answer="我不知道。", score=0.0,
                       sources=["refunds.md#退款时间"]),
                 Worst(item="q-en-2", question="How long do refunds take?", reference="5 to 10 business days.",
                       answer=SCRIPT, score=0.1, sources=["refunds.md#refund-timing", "faq.csv:3"])]
             for s in facts}
    return EvalReport(
        created=created,
        provenance=Provenance(base_model="models/base", tuned_model="models/merged", tuned_fingerprint=fingerprint,
                              test_file="data/sft/test.jsonl", test_sha256=test_sha256, questions=questions,
                              retrieval={"collection": "onboard", "k": 3, "mode": "hybrid"},
                              sampling={"temperature": 0.7, "top_p": 0.9, "repeats": 3}),
        systems=systems,
        comparisons=[NOISE, REAL] if comparisons is None else comparisons,
        edge=[_edge(s, c, p) for s, cases in edge.items() for c, p in cases.items()],
        worst=worst,
        gate=gate)
