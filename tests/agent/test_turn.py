"""The interview without an LLM, turn by turn: whole scripted transcripts in English and Chinese, with
questions back, corrections, defaults and answers it must ask again."""

from __future__ import annotations

from pathlib import Path

from agent.interview import understand
from agent.interview.plan import Hardware, Plan
from agent.interview.turn import CORRECTABLE, answer_turn, language_of

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"
CPU = Hardware(device="cpu", memory_gib=24.0)


def _chat(answers: list[str], lang: str = "en", plan: Plan | None = None):
    plan, replies, done = plan or Plan(hardware=CPU), [], False
    for a in answers:
        lang = language_of(a, lang)
        turn = answer_turn(plan, a, lang)
        plan, done = turn.plan, turn.done
        replies.append(turn.reply)
    return plan, replies, done


def test_an_english_interview_with_a_question_back_a_bad_path_and_a_correction():
    plan, replies, done = _chat([
        "Answer our customers' questions about orders and returns",
        "English only",
        "they are in /no/such/folder",
        f"my docs are in {DOCS}",
        "the tiny one",
        "what is RAFT?",
        "the second",
        "no wait, 3 hours",       # a correction of a slot not yet asked: the time budget
        "actually use both languages",
        "sure",
        "whatever",
        "yes",
    ])
    assert done
    assert "There is no folder /no/such/folder" in replies[2]
    assert "RAFT" in replies[5] and "retriev" in replies[5] and replies[5].endswith("4. cpt (raw documents)")
    assert plan.purpose.startswith("Answer our customers") and plan.docs == DOCS and plan.stage == "raft"
    assert plan.time_budget_hours == 3 and plan.languages == ("en", "zh") and plan.evaluate is True
    assert plan.deploy == "local" and "local: a server on this machine" in replies[-2]
    assert "The plan (* = the default):" in replies[-2] and "deploy: local *" in replies[-2]
    assert "base_model: tiny *" in replies[-2] and "hardware: CPU only, 24 GiB RAM" in replies[-2]
    assert replies[-2].endswith("Start with this plan? (yes, or say what to change)") and replies[-1] == "Starting."
    # the recommendation is in the plan: LoRA (fits the RAM), the tiny model's many epochs at a high rate
    assert plan.method == "lora" and plan.training.epochs == 30 and plan.training.learning_rate == 3e-3


def test_a_chinese_interview_with_why_defaults_and_a_reask():
    plan, replies, done = _chat([
        "回答客户关于退货和保修的问题",
        "中文",
        f"在 {DOCS} 目录下",
        "1",
        "为什么？",
        "默认",
        "两个小时",
        "也许吧",
        "不要",
        "改成英文",
        "3",
        "开始吧",
    ], lang="zh")
    assert done
    assert "最稳妥的第一步" in replies[4] and replies[4].endswith("4. cpt（继续预训练）")
    assert plan.stage == "sft" and "好的：time_budget_hours = 2" in replies[6]
    assert replies[7] == "要还是不要？" and plan.evaluate is False
    assert "已改为：languages = en" in replies[9] and plan.languages == ("en",)
    assert plan.deploy == "kubernetes" and "计划如下" in replies[-2] and "推荐的训练设置" in replies[-2]
    assert replies[-2].endswith("按这个计划开始吗？（好的，或者说要改哪里）") and replies[-1] == "开始。"


def test_nothing_to_default_to_is_said_and_asked_again():
    plan, replies, done = _chat(["Help staff find HR policies", "both", "you decide"])
    assert not done and plan.docs is None
    assert replies[-1].startswith("There is no default folder") and "folder path" in replies[-1]


def test_language_follows_the_user():
    assert language_of("改成中文", "en") == "zh" and language_of("use both", "zh") == "en"
    assert language_of("/data/docs 3", "zh") == "zh"


def test_every_slot_a_correction_can_name_is_one_the_interview_sets():
    assert set(CORRECTABLE) == set(understand.SLOTS)


def test_the_base_model_corrected_early_and_the_hardware_corrected_at_the_end():
    plan, replies, _ = _chat(["Help customers", "actually use Qwen"])
    assert "Changed: base_model = qwen2.5-coder-0.5b-instruct" in replies[-1] and plan.answered[-1] == "base_model"
    assert replies[-1].endswith("English, Chinese, or both?")
    plan, replies, done = _chat(["both", str(DOCS), "default", "default", "default", "yes", "local",
                                 "actually I have two 24G cards", "yes"], plan=plan)
    assert "Changed: hardware = 2 x 24 GiB GPU" in replies[-2] and "hardware: 2 GPU(s) of 24 GiB" in replies[-2]
    assert done and plan.hardware.device == "cuda" and plan.hardware.gpus == 2 and plan.hardware.gpu_memory_gib == 24
    # 2 epochs of LoRA for a real model; a 24 GiB GPU holds 4 sequences of the 0.5B at once
    assert plan.method == "lora" and plan.training.batch_size == 4 and plan.training.epochs == 2


def test_a_plan_that_does_not_fit_is_not_started():
    tiny_ram = Hardware(device="cpu", memory_gib=1.0)
    answers = ["Help customers", "both", str(DOCS), "2", "default", "default", "yes", "local"]
    plan, replies, done = _chat([*answers, "yes"], plan=Plan(hardware=tiny_ram))
    assert not done and "does not fit this hardware" in replies[-1] and "needs" in replies[-1]
    plan, replies, done = _chat(["use tiny", "yes"], plan=plan)
    assert done and plan.base_model == "tiny" and replies[-1] == "Starting."


def test_no_at_the_end_asks_what_to_change():
    answers = ["Help customers", "both", str(DOCS), "default", "default", "default", "yes", "local", "no"]
    plan, replies, done = _chat(answers)
    assert not done and replies[-1].startswith("What should change?")


def test_hello_is_greeted_not_taken_for_the_purpose():
    plan, replies, _ = _chat(["hello"])
    assert replies[0].startswith("Hello!") and "purpose" not in plan.answered
    plan, replies, _ = _chat(["你好"], lang="zh")
    assert replies[0].startswith("你好！") and "purpose" not in plan.answered
