"""`onboard eval --compare RUN_A RUN_B`: what changed between two evaluations, as Markdown.

Two runs are not paired the way two systems of one run are (the answers differ, and so may the
questions), so a change is judged by whether the two runs' intervals overlap: apart is a real change,
overlapping may be noise. Runs on different test sets are compared with a loud warning on top.
"""

from __future__ import annotations

from evaluation import format as fmt
from evaluation.render import Block, Bullets, Heading, Para, Table, render_markdown
from evaluation.results import EvalReport, GateResult, Interval

_PROVENANCE = ("base_model", "tuned_model", "tuned_fingerprint", "test_file", "test_sha256", "questions",
               "retrieval", "sampling")


def _provenance(a: EvalReport, b: EvalReport, la: str, lb: str) -> list[Block]:
    out: list[Block] = []
    pa, pb = a.provenance, b.provenance
    if pa.test_sha256 != pb.test_sha256 or pa.questions != pb.questions:
        out.append(Para(f"Warning: the two runs used different test sets ({la}: {pa.questions} questions from "
                        f"{pa.test_file}, sha256 {pa.test_sha256[:12]}; {lb}: {pb.questions} questions from "
                        f"{pb.test_file}, sha256 {pb.test_sha256[:12]}). This comparison is not like for like: a "
                        "change below may come from the questions, not the models.", "warn"))
    changed = [[k, str(getattr(pa, k)), str(getattr(pb, k))] for k in _PROVENANCE if getattr(pa, k) != getattr(pb, k)]
    out.append(Heading(2, "Provenance"))
    if changed:
        out.append(Table(["", la, lb], changed))
    else:
        out.append(Para("Same models, test set, retrieval and sampling settings."))
    return out


def _overlap(x: Interval, y: Interval) -> str:
    return "overlap (may be noise)" if x.low <= y.high and y.low <= x.high else "apart (a real change)"


def _scores(a: EvalReport, b: EvalReport, la: str, lb: str) -> list[Block]:
    rows = []
    for sa in a.systems:
        sb, name = b.system(sa.name), sa.name
        if sb is None:
            continue
        correctness, retrieval = fmt.metric_groups(set(sa.metrics) | set(sb.metrics))
        for m in correctness + retrieval:
            x, y = sa.metrics.get(m), sb.metrics.get(m)
            change = fmt.points(y.mean - x.mean) if x and y else fmt.DASH
            rows.append([name, m, fmt.interval(x), fmt.interval(y), change, _overlap(x, y) if x and y else fmt.DASH])
        if sa.edge_pass_rate is not None or sb.edge_pass_rate is not None:
            ea, eb = sa.edge_pass_rate, sb.edge_pass_rate
            change = fmt.points(eb - ea) if ea is not None and eb is not None else fmt.DASH
            rows.append([name, "edge-case pass rate", fmt.pct(ea), fmt.pct(eb), change, fmt.DASH])
    out: list[Block] = [Heading(2, "Scores"),
                        Para(f"Change is {lb} {fmt.MINUS} {la}, in percentage points. Intervals that do not overlap "
                             "show a real change; overlapping ones cannot tell the runs apart."),
                        Table(["system", "metric", la, lb, "change", "intervals"], rows)]
    only = [(la, [s.name for s in a.systems if b.system(s.name) is None]),
            (lb, [s.name for s in b.systems if a.system(s.name) is None])]
    out += [Para(f"Only in {label}: {', '.join(sys)}.") for label, sys in only if sys]
    return out


def _flips(a: EvalReport, b: EvalReport, la: str, lb: str) -> list[Block]:
    before = {(e.system, e.case): e for e in a.edge}
    rows = []
    for e in b.edge:
        old = before.get((e.system, e.case))
        if old is not None and old.passed != e.passed:
            rows.append([e.system, e.case, e.category, "fixed" if e.passed else "broke",
                         "pass" if old.passed else f"FAIL: {old.reason}", "pass" if e.passed else f"FAIL: {e.reason}"])
    out: list[Block] = [Heading(2, "Edge cases that flipped")]
    if not rows:
        return out + [Para("No edge case run in both flipped between pass and fail.")]
    return out + [Table(["system", "case", "category", "flip", la, lb], rows)]


def _verdict(gate: GateResult | None) -> str:
    if gate is None:
        return "no gate applied"
    return ("passed" if gate.passed else "FAILED") + (": " + "; ".join(gate.reasons) if gate.reasons else "")


def compare_reports(a: EvalReport, b: EvalReport, labels: tuple[str, str] = ("A", "B")) -> str:
    """What changed from evaluation `a` to evaluation `b`, as Markdown: provenance differences (with a
    warning when the test sets differ), each system's metrics side by side with the change and whether the
    intervals overlap, edge cases that flipped between pass and fail, and both gate verdicts.

    `labels` name the runs in the text (e.g. their folder names)."""
    la, lb = labels
    blocks: list[Block] = [Heading(1, f"Evaluation {la} vs {lb}"),
                           Para(f"{la}: created {a.created}. {lb}: created {b.created}.")]
    blocks += _provenance(a, b, la, lb) + _scores(a, b, la, lb) + _flips(a, b, la, lb)
    blocks += [Heading(2, "Gate"), Bullets([f"{la}: {_verdict(a.gate)}", f"{lb}: {_verdict(b.gate)}"])]
    return render_markdown(blocks)
