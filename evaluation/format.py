"""Numbers in words, the same way in the report, the gate's reasons and `onboard eval --compare`.

Scores are fractions in [0, 1] and are shown in percent; differences between two scores are shown in
percentage points with a real minus sign (−), so "+3.1 points [−4.0, +10.2]" reads as it would in a paper.
"""

from __future__ import annotations

from evaluation.results import Comparison, Interval

MINUS = "\u2212"
DASH = "\u2014"
"""Shown where a number is missing (a metric a system does not have, latency of empty answers)."""


def pct(x: float | None) -> str:
    """0.41 -> "41.0%"; None -> "—"."""
    return DASH if x is None else f"{x * 100:.1f}%"


def points(x: float) -> str:
    """A difference of two scores in percentage points, always signed: 0.031 -> "+3.1", -0.04 -> "−4.0"."""
    v = round(x * 100, 1)
    if v == 0:
        return "0.0"
    return f"+{v:.1f}" if v > 0 else f"{MINUS}{-v:.1f}"


def interval(iv: Interval | None) -> str:
    """A mean with its confidence interval, in percent: "41.0% [35.0, 47.2]"."""
    if iv is None:
        return DASH
    return f"{iv.mean * 100:.1f}% [{iv.low * 100:.1f}, {iv.high * 100:.1f}]"


def seconds(x: float | None) -> str:
    """Latency: 0.4213 -> "0.42 s"; None -> "—"."""
    return DASH if x is None else f"{x:.2f} s"


def verdict(c: Comparison) -> str:
    """What a paired difference means: noise when its interval holds 0, else a real change."""
    if c.noise:
        return "noise (the interval holds 0)"
    return "a real improvement" if c.diff > 0 else "a real decline"


def difference(diff: float, low: float, high: float) -> str:
    """"+3.1 points [−4.0, +10.2]"."""
    return f"{points(diff)} points [{points(low)}, {points(high)}]"


def describe(c: Comparison, n: int | None = None) -> str:
    """One comparison in words, e.g. "tuned+rag − base+rag on facts: +3.1 points [−4.0, +10.2]: noise (the
    interval holds 0) with 40 questions"."""
    text = f"{c.a} {MINUS} {c.b} on {c.metric}: {difference(c.diff, c.low, c.high)}: {verdict(c)}"
    return text if n is None else f"{text} with {n} questions"


CORRECTNESS: tuple[str, ...] = ("facts", "f1_char", "f1_word", "rouge_l", "bleu", "chrf", "exact")
"""Answer-correctness metrics, in the order the report shows them."""
RETRIEVAL: tuple[str, ...] = ("hit_at_k", "cites_source", "citation_support")
"""Retrieval metrics (systems with retrieval only)."""


def metric_groups(metric_names: set[str]) -> tuple[list[str], list[str]]:
    """(correctness, retrieval) metrics among `metric_names`, in report order; a metric in neither list
    (one the runner added later) is shown with correctness rather than dropped."""
    correctness = [m for m in CORRECTNESS if m in metric_names]
    retrieval = [m for m in RETRIEVAL if m in metric_names]
    correctness += sorted(metric_names - set(CORRECTNESS) - set(RETRIEVAL))
    return correctness, retrieval
