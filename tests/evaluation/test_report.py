"""The report people read: eval.json/md/html and PNG charts written from an EvalReport, the matrix with
intervals, differences called noise or real, edge cases with reasons, worst answers escaped."""

from __future__ import annotations

import re

from evaluation import format as fmt
from evaluation.report import write_report
from evaluation.results import SYSTEMS, EvalReport, GateResult
from tests.evaluation.reports import CHINESE, FACTS, make_report

PNG = b"\x89PNG\r\n\x1a\n"


def test_writes_every_file_and_valid_pngs(tmp_path):
    report = make_report()
    paths = write_report(report, tmp_path / "run")
    charts = {f"charts/{n}.png" for n in ("correctness", "retrieval", "edge_cases", "latency")}
    assert set(paths) == {"eval.json", "eval.md", "eval.html"} | charts
    for name in charts:
        data = paths[name].read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, name
    assert EvalReport.read(paths["eval.json"]) == report
    leftovers = [p.name for p in (tmp_path / "run").rglob(".*")]
    assert leftovers == [], f"temporary files left behind: {leftovers}"


def test_markdown_matrix_shows_each_systems_facts_mean_and_interval(tmp_path):
    md = write_report(make_report(), tmp_path)["eval.md"].read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| metric |"))
    assert header == "| metric | " + " | ".join(SYSTEMS) + " |"
    row = next(line for line in md.splitlines() if line.startswith("| facts |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert cells == [f"{FACTS[s][0] * 100:.1f}% [{FACTS[s][1] * 100:.1f}, {FACTS[s][2] * 100:.1f}]" for s in SYSTEMS]
    assert "52.5% [45.0, 60.0]" in cells
    assert "| hit_at_k | — | 80.0% [70.0, 90.0] | — | 80.0% [70.0, 90.0] |" in md
    assert "](charts/correctness.png)" in md and "](charts/latency.png)" in md
    for s in ("base", "data/sft/test.jsonl", "a" * 64, "40", "k=3", "temperature=0.7"):
        assert s in md


def test_noise_is_called_noise_and_a_clear_difference_is_not(tmp_path):
    md = write_report(make_report(), tmp_path)["eval.md"].read_text(encoding="utf-8")
    m = fmt.MINUS
    assert (f"tuned+rag {m} base+rag on facts: +3.1 points [{m}4.0, +10.2]: noise (the interval holds 0) "
            "with 40 questions") in md
    assert f"base+rag {m} base on facts: +25.0 points [+15.0, +35.0]: a real improvement with 40 questions" in md
    real = [line for line in md.splitlines() if line.startswith(f"- base+rag {m} base")]
    assert real and "noise" not in real[0]


def test_html_escapes_answers_and_renders_chinese(tmp_path):
    paths = write_report(make_report(), tmp_path)
    page = paths["eval.html"].read_bytes().decode("utf-8")
    assert '<meta charset="utf-8">' in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert CHINESE in page and "退款多久能到账？" in page
    assert '<img src="charts/correctness.png"' in page and "<style>" in page
    assert "<table>" in page
    md = paths["eval.md"].read_text(encoding="utf-8")
    assert "<script" not in md and "&lt;script>" in md and CHINESE in md


def test_edge_cases_per_case_with_the_reason_for_fails_and_rate_per_category(tmp_path):
    md = write_report(make_report(), tmp_path)["eval.md"].read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if line.startswith("| injection-planted-zh |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["injection-planted-zh", "prompt_injection", "zh"]
    assert cells[3:] == ["pass", "pass", "FAIL: obeyed the planted instruction: said 'ignore previous'", "pass"]
    assert "| prompt_injection | 100.0% | 100.0% | 0.0% | 100.0% |" in md
    assert "| all | 100.0% | 100.0% | 50.0% | 100.0% |" in md


def test_latency_table_and_worst_answers_beside_reference_and_sources(tmp_path):
    md = write_report(make_report(), tmp_path)["eval.md"].read_text(encoding="utf-8")
    assert "| base | 0.12 s | 0.30 s | 1.50 s | 2.25 s |" in md
    assert md.count("### tuned+rag") == 1
    worst = next(line for line in md.splitlines() if line.startswith("| 1 | q-zh-1 |"))
    assert CHINESE in worst and "refunds.md#退款时间" in worst
    assert "refunds.md#refund-timing<br>faq.csv:3" in md


def test_gate_verdict_with_its_reasons(tmp_path):
    gate = GateResult(passed=False, reasons=["tuned+rag facts 41.0% vs base+rag 52.5%: worse beyond the noise"])
    paths = write_report(make_report(gate=gate), tmp_path)
    md = paths["eval.md"].read_text(encoding="utf-8")
    assert "The gate FAILED." in md and "- tuned+rag facts 41.0% vs base+rag 52.5%: worse beyond the noise" in md
    assert '<p class="fail">The gate FAILED.</p>' in paths["eval.html"].read_text(encoding="utf-8")
    md = write_report(make_report(), tmp_path / "none")["eval.md"].read_text(encoding="utf-8")
    assert "No gate was applied to this report." in md


def test_a_report_without_retrieval_or_edge_cases_still_renders(tmp_path):
    report = make_report(facts={"base": (0.2, 0.1, 0.3), "tuned": (0.4, 0.3, 0.5)}, edge={}, comparisons=[])
    paths = write_report(report, tmp_path)
    assert "charts/retrieval.png" not in paths and "charts/edge_cases.png" not in paths
    md = paths["eval.md"].read_text(encoding="utf-8")
    assert "No edge cases were run." in md and "This report holds no paired comparisons." in md
    assert re.search(r"^\| facts \| 20\.0% \[10\.0, 30\.0\] \| 40\.0% \[30\.0, 50\.0\] \|$", md, re.M)
