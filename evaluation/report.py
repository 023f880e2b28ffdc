"""The evaluation report people read: `eval.json`, `eval.md`, `eval.html` and `charts/*.png`, from an
`EvalReport` (no model needed, so a report can be re-rendered from its `eval.json`).

    paths = write_report(EvalReport.read("reports/run1/eval.json"), Path("reports/run1"))

Every file is written atomically: a crash leaves the previous version or the new one, never half of one.
"""

from __future__ import annotations

from pathlib import Path

from evaluation import format as fmt
from evaluation.charts import write_charts
from evaluation.render import Block, Bullets, Heading, Image, Para, Table, render_html, render_markdown
from evaluation.results import JUDGE_SCORES, EvalReport, SystemSummary
from rag.io import atomic_write, atomic_write_json

CLIP = 600
"""Characters of an answer shown in the worst-answers tables (eval.json holds them whole)."""


def _clip(text: str, n: int = CLIP) -> str:
    return text if len(text) <= n else text[:n] + f"… ({len(text) - n} more characters)"


def _settings(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) if d else fmt.DASH


def _provenance(report: EvalReport) -> list[Block]:
    p = report.provenance
    items = [f"Base model: {p.base_model}",
             f"Tuned model: {p.tuned_model or fmt.DASH}" + (f" (fingerprint {p.tuned_fingerprint})"
                                                            if p.tuned_fingerprint else ""),
             f"Test file: {p.test_file} (sha256 {p.test_sha256})",
             f"Questions: {p.questions}",
             f"Retrieval: {_settings(p.retrieval)}",
             f"Sampling: {_settings(p.sampling)}"]
    items += [f"{k}: {v}" for k, v in (p.model_extra or {}).items()]
    return [Heading(2, "Provenance"), Bullets(items)]


def _matrix(report: EvalReport, charts: dict[str, str]) -> list[Block]:
    systems = report.systems
    correctness, retrieval = fmt.metric_groups(set().union(*(s.metrics for s in systems)) if systems else set())
    rows = [[m] + [fmt.interval(s.metrics.get(m)) for s in systems] for m in correctness + retrieval]
    for key in sorted(set().union(*(s.corpus for s in systems)) if systems else set()):
        rows.append([f"{key} (corpus)"] + [fmt.pct(s.corpus.get(key)) for s in systems])
    if any(s.edge_pass_rate is not None for s in systems):
        rows.append(["edge-case pass rate"] + [fmt.pct(s.edge_pass_rate) for s in systems])
    if any(s.consistency is not None for s in systems):
        rows.append(["consistency"] + [fmt.pct(s.consistency) for s in systems])
    if any(s.echo_rate is not None for s in systems):
        rows.append(["echo rate (lower is better)"] + [fmt.pct(s.echo_rate) for s in systems])
    if any(s.decline_rate is not None for s in systems):
        rows.append(["declined, must decline"] + [fmt.pct(s.decline_rate) for s in systems])
        for kind in sorted(set().union(*(s.decline_by_kind for s in systems))):
            rows.append([f"  declined, {kind}"] + [fmt.pct(s.decline_by_kind.get(kind)) for s in systems])
    out: list[Block] = [
        Heading(2, "The matrix"),
        Para("Each score is the mean over the questions with its 95% bootstrap interval [low, high], in percent; "
             "higher is better. Overlapping intervals cannot tell two systems apart: see the paired differences below."),
        Table(["metric"] + [s.name for s in systems], rows)]
    out += [Image(charts[k], f"{k} by system") for k in ("correctness", "retrieval") if k in charts]
    return out + _by_language(systems)


def _by_language(systems: list[SystemSummary]) -> list[Block]:
    """The headline metrics per question language: a system can help in English and not in Chinese."""
    languages = sorted(set().union(*(s.by_language for s in systems)) if systems else set())
    if not languages:
        return []
    out: list[Block] = [Heading(3, "By language")]
    for lang in languages:
        names = list(dict.fromkeys(m for s in systems for m in s.by_language.get(lang, {})))
        n = max((iv.n for s in systems for iv in s.by_language.get(lang, {}).values()), default=0)
        rows = [[m] + [fmt.interval(s.by_language.get(lang, {}).get(m)) for s in systems] for m in names]
        out += [Para(f"{lang}: {n} questions"), Table(["metric"] + [s.name for s in systems], rows)]
    return out


def _differences(report: EvalReport) -> list[Block]:
    out: list[Block] = [Heading(2, "What the differences mean"),
                        Para("Each line is a paired difference on the same questions with its 95% bootstrap "
                             "interval, in percentage points. When the interval holds 0 the difference is noise: "
                             "these questions cannot tell the two systems apart.")]
    if not report.comparisons:
        return out + [Para("This report holds no paired comparisons.")]
    for language in dict.fromkeys(c.language for c in report.comparisons):
        items = []
        for c in (c for c in report.comparisons if c.language == language):
            s = report.system(c.a)
            iv = (s.by_language.get(language, {}) if language else s.metrics).get(c.metric) if s else None
            items.append(fmt.describe(c, iv.n if iv else None if language else report.provenance.questions))
        if language:
            out.append(Para(f"{language} questions only:"))
        out.append(Bullets(items))
    return out


def _latency(report: EvalReport, charts: dict[str, str]) -> list[Block]:
    rows = [[s.name, fmt.seconds(s.latency.ttft_p50), fmt.seconds(s.latency.ttft_p95),
             fmt.seconds(s.latency.total_p50), fmt.seconds(s.latency.total_p95)] for s in report.systems]
    at_once = getattr(report.provenance, "concurrency", None)  # None: not recorded (reused answers, old reports)
    load = [] if at_once is None else [Para(
        f"Answers were asked {at_once} at a time (a local model generates them as one batch): each latency is "
        "under that load." if at_once > 1 else "Answers were asked one at a time.")]
    out: list[Block] = [Heading(2, "Latency"), *load,
                        Table(["system", "TTFT p50", "TTFT p95", "total p50", "total p95"], rows)]
    return out + ([Image(charts["latency"], "latency by system")] if "latency" in charts else [])


def _edge_cases(report: EvalReport, charts: dict[str, str]) -> list[Block]:
    out: list[Block] = [Heading(2, "Edge cases")]
    if not report.edge:
        return out + [Para("No edge cases were run.")]
    systems = [s for s in report.systems if s.edge_by_category or s.edge_pass_rate is not None]
    categories = sorted(set().union(*(s.edge_by_category for s in systems)) if systems else set())
    rows = [[c] + [fmt.pct(s.edge_by_category.get(c)) for s in systems] for c in categories]
    rows.append(["all"] + [fmt.pct(s.edge_pass_rate) for s in systems])
    out += [Heading(3, "Pass rate per category"), Table(["category"] + [s.name for s in systems], rows)]
    if "edge_cases" in charts:
        out.append(Image(charts["edge_cases"], "edge-case pass rate by category"))
    names = list(dict.fromkeys([s.name for s in report.systems] + [e.system for e in report.edge]))
    cases: dict[str, dict] = {}
    for e in report.edge:
        row = cases.setdefault(e.case, {"category": e.category, "language": e.language})
        row[e.system] = "pass" if e.passed else f"FAIL: {e.reason}"
    table = Table(["case", "category", "language"] + names,
                  [[case, r["category"], r["language"]] + [r.get(n, fmt.DASH) for n in names]
                   for case, r in cases.items()])
    return out + [Heading(3, "Per case"), table]


def _worst(report: EvalReport) -> list[Block]:
    out: list[Block] = [Heading(2, "Worst answers"),
                        Para("Each system's lowest-scored answers, beside the reference and the sources it was given.")]
    if not report.worst:
        return out + [Para("This report lists no worst answers.")]
    order = [s.name for s in report.systems] + [k for k in report.worst if report.system(k) is None]
    for name in (n for n in order if n in report.worst):
        rows = [[str(i), w.item, w.question, w.reference, _clip(w.answer), fmt.pct(w.score), "\n".join(w.sources)]
                for i, w in enumerate(report.worst[name][:10], 1)]
        out += [Heading(3, name), Table(["#", "item", "question", "reference", "answer", "score", "sources"], rows)]
    return out


def _judge(report: EvalReport) -> list[Block]:
    j = report.judge
    if j is None:
        return []
    out: list[Block] = [Heading(2, "LLM judge"),
                        Para(f"Judge {j.model}, prompt {j.prompt_version} (evaluation/prompts/judge.md): correctness, "
                             "faithfulness to the sources and tone, 1 to 5, mean with its 95% bootstrap interval.")]
    rows = [[name] + [_score(s.scores.get(name)) for s in j.systems] for name in JUDGE_SCORES]
    rows.append(["scored / failed"] + [f"{s.scored} / {s.failed}" for s in j.systems])
    out.append(Table(["score"] + [s.name for s in j.systems], rows))
    a = j.agreement
    out += [Heading(3, "Agreement with the rule metrics"),
            Para("On the same answers: Spearman rank correlation of the judge's correctness with key-fact recall "
                 "and with character F1, and how often the judge (correctness ≥ 4) and the rules (key facts ≥ 50%) "
                 "agree on pass or fail. A judge that does not follow the key facts measures something else."),
            Table(["", "with key facts", "with F1 (char)", "pass/fail agreement"],
                  [[s.name, _rho(s.agreement.facts), _rho(s.agreement.f1_char), _rate(s.agreement)]
                   for s in j.systems] + [["all systems", _rho(a.facts), _rho(a.f1_char), _rate(a)]])]
    failures = [f"{s.name}: {f}" for s in j.systems for f in s.failures]
    return out + ([Para("Answers the judge could not score (first few):"), Bullets(failures)] if failures else [])


def _score(iv) -> str:
    return fmt.DASH if iv is None else f"{iv.mean:.2f} [{iv.low:.2f}, {iv.high:.2f}]"


def _rho(c) -> str:
    return f"{fmt.DASH} (n={c.n})" if c.rho is None else f"{c.rho:+.2f} (n={c.n})"


def _rate(a) -> str:
    return f"{fmt.pct(a.pass_rate)} (n={a.pass_n})"


def _gate(report: EvalReport) -> list[Block]:
    out: list[Block] = [Heading(2, "Gate")]
    if report.gate is None:
        return out + [Para("No gate was applied to this report.")]
    verdict = "PASSED" if report.gate.passed else "FAILED"
    return out + [Para(f"The gate {verdict}.", "pass" if report.gate.passed else "fail"), Bullets(report.gate.reasons)]


def report_blocks(report: EvalReport, charts: dict[str, str]) -> list[Block]:
    """The report's content, for `render_markdown` / `render_html`; `charts` maps a chart's name to its
    path relative to the report."""
    p = report.provenance
    blocks: list[Block] = [Heading(1, f"Evaluation of {p.tuned_model or p.base_model}"),
                           Para(f"Created {report.created}; {p.questions} questions from {p.test_file}.")]
    if report.gate is not None:
        blocks.append(Para(f"Gate: {'passed' if report.gate.passed else 'FAILED'}.",
                           "pass" if report.gate.passed else "fail"))
    return (blocks + _provenance(report) + _matrix(report, charts) + _differences(report)
            + _latency(report, charts) + _edge_cases(report, charts) + _judge(report) + _worst(report)
            + _gate(report))


def write_report(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    """Write `eval.json`, `eval.md`, `eval.html` and `charts/*.png` into `out_dir` (created if needed).

    Returns:
        Each written file's path relative to `out_dir` ("eval.md", "charts/latency.png", ...) -> its path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = write_charts(report, out_dir / "charts")
    rel = {name: png.relative_to(out_dir).as_posix() for name, png in pngs.items()}
    blocks = report_blocks(report, rel)
    title = f"Evaluation of {report.provenance.tuned_model or report.provenance.base_model}"
    paths = {"eval.md": out_dir / "eval.md", "eval.html": out_dir / "eval.html", "eval.json": out_dir / "eval.json"}
    atomic_write(paths["eval.md"], render_markdown(blocks))
    atomic_write(paths["eval.html"], render_html(blocks, title))
    atomic_write_json(paths["eval.json"], report.model_dump(mode="json"))
    return paths | {rel[name]: png for name, png in pngs.items()}
