"""Bar charts of an evaluation report, one PNG per metric group, for `eval.md` and `eval.html`.

matplotlib is imported on first use with the Agg backend (no display needed). Labels are system,
metric and category names, which are ASCII, so no CJK font is needed.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.format import metric_groups
from evaluation.results import EvalReport
from rag.io import publish_file

Series = dict[str, list[float | None]]
"""Bar heights per series (one series per system, or per latency statistic), one per group on the x axis."""
Errors = dict[str, list[tuple[float, float] | None]]
"""(low, high) per bar, in the units of the heights."""


def _bars(png: Path, title: str, ylabel: str, groups: list[str], series: Series, errors: Errors | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) + 2), 3.8), dpi=100)
    try:
        for i, (name, heights) in enumerate(series.items()):
            shown = [(x, h) for x, h in enumerate(heights) if h is not None]
            xs = [x + (i - (len(series) - 1) / 2) * width for x, _ in shown]
            ys = [h for _, h in shown]
            yerr = None
            if errors and name in errors:
                bounds = [errors[name][x] for x, _ in shown]
                yerr = [[max(0.0, h - b[0]) if b else 0.0 for h, b in zip(ys, bounds, strict=True)],
                        [max(0.0, b[1] - h) if b else 0.0 for h, b in zip(ys, bounds, strict=True)]]
            ax.bar(xs, ys, width, label=name, yerr=yerr, capsize=3 if yerr else 0)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
        fig.tight_layout()
        with publish_file(png) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return png


def _score_chart(report: EvalReport, png: Path, title: str, metrics: list[str]) -> Path:
    series: Series = {}
    errors: Errors = {}
    for s in report.systems:
        ivs = [s.metrics.get(m) for m in metrics]
        if any(ivs):
            series[s.name] = [iv.mean * 100 if iv else None for iv in ivs]
            errors[s.name] = [(iv.low * 100, iv.high * 100) if iv else None for iv in ivs]
    return _bars(png, title, "% (95% CI)", metrics, series, errors)


def write_charts(report: EvalReport, charts_dir: Path) -> dict[str, Path]:
    """Write the report's charts under `charts_dir`, each atomically.

    Returns:
        Chart name ("correctness", "retrieval", "edge_cases", "latency") -> its PNG; a group with no data
        (no retrieval metrics, no edge cases) has no chart.
    """
    names: set[str] = set().union(*(s.metrics for s in report.systems)) if report.systems else set()
    correctness, retrieval = metric_groups(names)
    out: dict[str, Path] = {}
    if correctness:
        out["correctness"] = _score_chart(report, charts_dir / "correctness.png", "Answer correctness", correctness)
    if retrieval:
        out["retrieval"] = _score_chart(report, charts_dir / "retrieval.png", "Retrieval", retrieval)
    categories = sorted(set().union(*(s.edge_by_category for s in report.systems)))
    if categories:
        edge: Series = {s.name: [s.edge_by_category[c] * 100 if c in s.edge_by_category else None
                                 for c in categories] for s in report.systems if s.edge_by_category}
        out["edge_cases"] = _bars(charts_dir / "edge_cases.png", "Edge cases passed, by category", "% passed",
                                  categories, edge)
    if report.systems:
        stats = {"TTFT p50": "ttft_p50", "TTFT p95": "ttft_p95", "total p50": "total_p50", "total p95": "total_p95"}
        latency: Series = {label: [getattr(s.latency, field) for s in report.systems] for label, field in stats.items()}
        out["latency"] = _bars(charts_dir / "latency.png", "Latency", "seconds", [s.name for s in report.systems], latency)
    return out
