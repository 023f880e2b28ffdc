"""The interview's plan: answers validated as they are set, saved atomically, read back or refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.interview.plan import BadPlan, Plan, load, save


def test_answers_are_validated_and_remembered_in_order():
    plan = Plan().with_answer("docs", "examples/docs").with_answer("languages", ["zh"])
    plan = plan.with_answer("docs", "/data/faq")  # answered again: moves to the end
    assert plan.docs == Path("/data/faq") and plan.languages == ("zh",)
    assert plan.answered == ("languages", "docs")
    assert plan.base_model == "tiny" and plan.stage == "sft"  # defaults stand until answered


@pytest.mark.parametrize(("slot", "value", "said"), [
    ("stage", "pretrain", "stage"),
    ("languages", ["fr"], "languages.0"),
    ("time_budget_hours", -2, "time_budget_hours"),
    ("colour", "blue", "no slot 'colour'"),
    ("answered", ["docs"], "no slot 'answered'"),
])
def test_a_bad_answer_names_the_slot(slot, value, said):
    with pytest.raises(BadPlan) as e:
        Plan().with_answer(slot, value)
    assert said in str(e.value)


def test_save_and_load_round_trip_with_chinese(tmp_path):
    plan = Plan(purpose="回答客户关于退货的问题", languages=("en", "zh"), docs=Path("/srv/docs"),
                tone_examples=("您好，很高兴为您服务。",)).with_answer("time_budget_hours", 1.5)
    path = tmp_path / "plan.yaml"
    save(plan, path)
    assert "回答客户" in path.read_text(encoding="utf-8")  # readable, not \u-escaped
    assert load(path) == plan
    assert not list(tmp_path.glob("*.tmp*")) and [p.name for p in tmp_path.iterdir()] == ["plan.yaml"]


@pytest.mark.parametrize(("text", "said"), [
    ("stage: [unclosed", "not a YAML file"),
    ("- a list", "a YAML mapping"),
    ("schema_version: 9\n", "schema_version 9"),
    ("stage: sft\nbatch: 4\n", "batch: Extra inputs are not permitted"),
    ("training:\n  batch_size: 0\n", "training.batch_size"),
])
def test_a_bad_plan_file_is_named_with_its_field(tmp_path, text, said):
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadPlan) as e:
        load(path)
    assert str(path) in str(e.value) and said in str(e.value)


def test_a_missing_plan_says_where_one_comes_from(tmp_path):
    with pytest.raises(BadPlan, match="onboard chat"):
        load(tmp_path / "nope.yaml")
