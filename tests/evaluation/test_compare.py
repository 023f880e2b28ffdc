"""`onboard eval --compare`: changes per system and metric with overlapping intervals called so, edge
cases that flipped, both gate verdicts, and a loud warning when the test sets differ."""

from __future__ import annotations

from evaluation.compare import compare_reports
from evaluation.results import GateResult
from tests.evaluation.reports import FACTS, make_report


def _row(md: str, start: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_changes_per_system_and_metric_with_overlap():
    a = make_report(facts=FACTS | {"tuned+rag": (0.40, 0.35, 0.45)})
    b = make_report(facts=FACTS | {"tuned+rag": (0.60, 0.55, 0.65), "tuned": (0.38, 0.30, 0.46)})
    md = compare_reports(a, b, labels=("run1", "run2"))
    assert _row(md, "| system |") == ["system", "metric", "run1", "run2", "change", "intervals"]
    assert _row(md, "| tuned+rag | facts |") == ["tuned+rag", "facts", "40.0% [35.0, 45.0]", "60.0% [55.0, 65.0]",
                                                  "+20.0", "apart (a real change)"]
    assert _row(md, "| tuned+rag | rouge_l |")[-2:] == ["+6.7", "apart (a real change)"]
    assert _row(md, "| tuned+rag | hit_at_k |")[-2:] == ["0.0", "overlap (may be noise)"]
    assert _row(md, "| tuned | facts |")[-2:] == ["+3.0", "overlap (may be noise)"]
    assert _row(md, "| base | facts |")[-2:] == ["0.0", "overlap (may be noise)"]
    assert "Same models, test set, retrieval and sampling settings." in md
    assert "not like for like" not in md


def test_edge_cases_that_flipped_both_ways():
    a = make_report(edge={"tuned+rag": {"ood-weather-en": True, "injection-planted-zh": False}})
    b = make_report(edge={"tuned+rag": {"ood-weather-en": False, "injection-planted-zh": True}})
    md = compare_reports(a, b)
    fixed = _row(md, "| tuned+rag | injection-planted-zh |")
    assert fixed[3:] == ["fixed", "FAIL: obeyed the planted instruction: said 'ignore previous'", "pass"]
    broke = _row(md, "| tuned+rag | ood-weather-en |")
    assert broke[3:5] == ["broke", "pass"] and broke[5].startswith("FAIL: ")
    assert "No edge case" not in md
    assert "No edge case run in both flipped" in compare_reports(a, a)


def test_gate_verdicts_and_provenance_differences():
    a = make_report(gate=GateResult(passed=False, reasons=["tuned+rag facts worse beyond the noise"]),
                    fingerprint="fp-old")
    b = make_report(gate=GateResult(passed=True, reasons=["tuned+rag facts within the noise"]), fingerprint="fp-new")
    md = compare_reports(a, b)
    assert "- A: FAILED: tuned+rag facts worse beyond the noise" in md
    assert "- B: passed: tuned+rag facts within the noise" in md
    assert _row(md, "| tuned_fingerprint |") == ["tuned_fingerprint", "fp-old", "fp-new"]


def test_different_test_sets_are_flagged_loudly():
    a = make_report()
    b = make_report(test_sha256="b" * 64, questions=35)
    md = compare_reports(a, b)
    warning = md.split("\n\n")[2]
    assert warning.startswith("> **Warning: the two runs used different test sets")
    assert "not like for like" in warning and "aaaaaaaaaaaa" in warning and "bbbbbbbbbbbb" in warning
    assert _row(md, "| test_sha256 |")[1:] == ["a" * 64, "b" * 64]


def test_systems_in_one_run_only_are_named():
    a = make_report()
    b = make_report(facts={k: v for k, v in FACTS.items() if not k.startswith("tuned")})
    md = compare_reports(a, b)
    assert "Only in A: tuned, tuned+rag." in md
    assert "| tuned+rag | facts |" not in md
