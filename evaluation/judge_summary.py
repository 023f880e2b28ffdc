"""The judge's scores summarised: per system means with intervals, and the judge's agreement with the rule
metrics on the same answers (Spearman rank correlation with key-fact recall and character F1, and how often
judge and rules agree on pass/fail). No HTTP here: `evaluation.results` holds a `JudgeSummary` in the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from evaluation.metrics.stats import bootstrap_ci
from evaluation.results import JUDGE_SCORES as SCORES
from evaluation.results import Agreement, Correlation, Interval, JudgeScore, JudgeSummary, SystemJudge

JUDGE_PASS, FACTS_PASS = 4, 0.5
"""Pass/fail agreement: the judge passes an answer at correctness >= 4, the rules at facts >= 0.5."""
MAX_FAILURES_SHOWN = 5


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks, so ties are handled). None when there
    are fewer than 3 pairs or one side is constant: no ranking to agree with.

    Raises:
        ValueError: x and y differ in length.
    """
    if len(x) != len(y):
        raise ValueError(f"spearman needs paired values: {len(x)} vs {len(y)}")
    if len(x) < 3:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx, vy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return max(-1.0, min(1.0, cov / math.sqrt(vx * vy)))


def _agreement(pairs: list[tuple[JudgeScore, dict[str, float | None]]]) -> Agreement:
    def corr(metric: str) -> Correlation:
        xy = [(s.correctness, r[metric]) for s, r in pairs if r.get(metric) is not None]
        return Correlation(rho=spearman([x for x, _ in xy], [y for _, y in xy]), n=len(xy))

    both = [(s.correctness >= JUDGE_PASS, r["facts"] >= FACTS_PASS) for s, r in pairs if r.get("facts") is not None]
    rate = sum(j == f for j, f in both) / len(both) if both else None
    return Agreement(facts=corr("facts"), f1_char=corr("f1_char"), pass_rate=rate, pass_n=len(both))


def summarise(scores: Sequence[JudgeScore], rule_scores: dict[str, dict[str, dict[str, float | None]]],
              model: str, prompt_version: str) -> JudgeSummary:
    """Per system: mean scores with intervals, counts, and agreement with the rule metrics.

    Args:
        scores: what `judge` returned.
        rule_scores: {system: {question id: `evaluation.score.per_question` metrics}}; answers missing
            there are left out of the agreement only.
        model, prompt_version: the judge that scored them and its prompt (recorded).
    """
    systems = list(dict.fromkeys(s.system for s in scores))
    out, pooled = [], []
    for name in systems:
        mine = [s for s in scores if s.system == name]
        ok = [s for s in mine if s.ok]
        intervals = {}
        for key in SCORES if ok else ():
            mean, low, high = bootstrap_ci([getattr(s, key) for s in ok])
            intervals[key] = Interval(mean=mean, low=low, high=high, n=len(ok))
        pairs = [(s, rule_scores[name][s.item]) for s in ok if s.item in rule_scores.get(name, {})]
        pooled += pairs
        out.append(SystemJudge(name=name, scores=intervals, scored=len(ok), failed=len(mine) - len(ok),
                               failures=[f"{s.item}: {s.error}" for s in mine if not s.ok][:MAX_FAILURES_SHOWN],
                               agreement=_agreement(pairs)))
    return JudgeSummary(model=model, prompt_version=prompt_version, systems=out, agreement=_agreement(pooled))
