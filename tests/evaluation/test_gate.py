"""The gate: passes when the fine-tune is better or within the noise, fails naming the metric and the
numbers when it is worse beyond the noise or loses edge cases; finds a model's last evaluation by its
fingerprint."""

from __future__ import annotations

import json

import pytest

from evaluation.errors import BadGateRule, MissingSystem, NotAModel
from evaluation.format import MINUS
from evaluation.gate import GateRule, apply_gate, latest_evaluation, model_fingerprint
from evaluation.report import write_report
from evaluation.results import Comparison
from rag.errors import OnboardError
from tests.evaluation.reports import FACTS, REAL, make_report


def _vs_base_rag(diff: float, low: float, high: float) -> list[Comparison]:
    return [Comparison(a="tuned+rag", b="base+rag", metric="facts", diff=diff, low=low, high=high), REAL]


def test_passes_when_better_beyond_the_noise():
    result = apply_gate(make_report(comparisons=_vs_base_rag(0.1, 0.05, 0.15)), GateRule())
    assert result.passed
    assert "better beyond the noise" in result.reasons[0]


def test_passes_within_the_noise():
    result = apply_gate(make_report(), GateRule())
    assert result.passed
    assert result.reasons[0] == f"tuned+rag facts 55.6% vs base+rag 52.5%: +3.1 points [{MINUS}4.0, +10.2], within the noise"
    assert result.reasons[1] == "tuned+rag edge-case pass rate 100.0% vs base+rag 100.0%: 0.0 points, not lower"


def test_fails_naming_metric_and_numbers_when_worse_beyond_the_noise():
    facts = FACTS | {"tuned+rag": (0.41, 0.34, 0.48)}
    report = make_report(facts=facts, comparisons=_vs_base_rag(-0.115, -0.18, -0.051))
    result = apply_gate(report, GateRule())
    assert not result.passed
    assert result.reasons[0] == (f"tuned+rag facts 41.0% vs base+rag 52.5%: {MINUS}11.5 points [{MINUS}18.0, {MINUS}5.1], "
                                 "worse beyond the noise")
    allowed = apply_gate(report, GateRule(max_drop=0.06))
    assert allowed.passed and "within the allowed drop of 6.0 points" in allowed.reasons[0]
    assert not apply_gate(report, GateRule(max_drop=0.04)).passed


def test_a_comparison_stored_the_other_way_round_is_turned():
    report = make_report(comparisons=[Comparison(a="base+rag", b="tuned+rag", metric="facts", diff=0.1, low=0.04,
                                                 high=0.16)])
    result = apply_gate(report, GateRule())
    assert not result.passed
    assert f"{MINUS}10.0 points [{MINUS}16.0, {MINUS}4.0]" in result.reasons[0]


def test_an_edge_case_pass_rate_drop_fails_naming_the_category():
    edge = {"base+rag": {"ood-weather-en": True, "injection-planted-zh": True},
            "tuned+rag": {"ood-weather-en": True, "injection-planted-zh": False}}
    report = make_report(edge=edge)
    result = apply_gate(report, GateRule())
    assert not result.passed
    assert result.reasons[1].startswith(f"tuned+rag edge-case pass rate 50.0% vs base+rag 100.0%: {MINUS}50.0 points, "
                                        "lower by more than the allowed 0.0 points")
    assert "prompt_injection 0.0% vs 100.0%" in result.reasons[1]
    assert apply_gate(report, GateRule(edge_tolerance=0.5)).passed


def test_a_missing_system_raises_naming_it():
    report = make_report(facts={k: v for k, v in FACTS.items() if not k.startswith("tuned")}, comparisons=[REAL])
    with pytest.raises(MissingSystem, match=r"no tuned\+rag \(it has: base, base\+rag\)") as e:
        apply_gate(report, GateRule())
    assert isinstance(e.value, OnboardError)


def test_an_unmeasured_metric_or_missing_comparison_is_refused():
    with pytest.raises(BadGateRule, match="'meteor' was not measured"):
        apply_gate(make_report(), GateRule(metric="meteor"))
    with pytest.raises(BadGateRule, match="no paired comparison of tuned\\+rag and base\\+rag on rouge_l"):
        apply_gate(make_report(), GateRule(metric="rouge_l"))


def test_rule_loads_from_yaml_or_json_with_overrides(tmp_path):
    y = tmp_path / "gate.yaml"
    y.write_text("metric: f1_char\nmax_drop: 0.02\n", encoding="utf-8")
    assert GateRule.load(y) == GateRule(metric="f1_char", max_drop=0.02)
    assert GateRule.load(y, max_drop=0.05, edge_tolerance=None).max_drop == 0.05
    j = tmp_path / "gate.json"
    j.write_text(json.dumps({"baseline": "tuned", "edge_tolerance": 0.1}), encoding="utf-8")
    assert GateRule.load(j) == GateRule(baseline="tuned", edge_tolerance=0.1)
    assert GateRule.load() == GateRule()


@pytest.mark.parametrize("text, match", [("metrc: facts\n", "metrc"), ("max_drop: 2\n", "max_drop"),
                                          ("candidate: tuned+RAG\n", "candidate.*'tuned\\+RAG' is not a system"),
                                          ("- facts\n", "a gate rule is a mapping"), ("a: [\n", "not a readable")])
def test_a_bad_rule_file_is_refused_naming_file_and_key(tmp_path, text, match):
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadGateRule, match=match) as e:
        GateRule.load(path)
    assert str(path) in str(e.value)


def test_latest_evaluation_picks_the_newest_with_the_fingerprint(tmp_path):
    reports = tmp_path / "reports"
    write_report(make_report(created="2025-03-01T00:00:00+00:00", fingerprint="fp-1"), reports / "b-newest")
    write_report(make_report(created="2025-01-01T00:00:00+00:00", fingerprint="fp-1"), reports / "z-older")
    write_report(make_report(created="2025-06-01T00:00:00+00:00", fingerprint="fp-2"), reports / "other-model")
    (reports / "broken").mkdir()
    (reports / "broken" / "eval.json").write_text("{not json", encoding="utf-8")
    found = latest_evaluation(reports, "fp-1")
    assert found is not None and found.created == "2025-03-01T00:00:00+00:00"
    assert latest_evaluation(reports, "fp-2").created.startswith("2025-06-01")
    assert latest_evaluation(reports, "fp-3") is None
    assert latest_evaluation(tmp_path / "none", "fp-1") is None


def test_model_fingerprint_follows_the_weights_not_unrelated_files(tmp_path):
    model = tmp_path / "merged"
    model.mkdir()
    weights = bytearray(range(256)) * (3 * 4096)  # 3 MiB
    (model / "model.safetensors").write_bytes(bytes(weights))
    (model / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    first = model_fingerprint(model)
    assert len(first) == 64
    (model / "README.md").write_text("notes", encoding="utf-8")
    (model / "eval-notes.txt").write_text("more", encoding="utf-8")
    assert model_fingerprint(model) == first
    weights[1000] ^= 0xFF
    (model / "model.safetensors").write_bytes(bytes(weights))
    changed = model_fingerprint(model)
    assert changed != first
    (model / "config.json").write_text('{"model_type": "qwen2"}', encoding="utf-8")
    assert model_fingerprint(model) not in (first, changed)


def test_model_fingerprint_refuses_a_folder_without_weights(tmp_path):
    with pytest.raises(NotAModel, match="no \\*.safetensors"):
        model_fingerprint(tmp_path)
