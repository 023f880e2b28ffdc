"""The interview without an LLM, turn by turn: whole scripted transcripts in English and Chinese, with
questions back, corrections, defaults and answers it must ask again."""

from __future__ import annotations

from pathlib import Path

from agent.interview.plan import Plan
from agent.interview.turn import answer_turn, language_of

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"


def _chat(answers: list[str], lang: str = "en"):
    plan, replies, done = Plan(), [], False
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
        "what is RAFT?",
        "the second",
        "no wait, 3 hours",       # a correction of a slot not yet asked: the time budget
        "actually use both languages",
        "sure",
        "whatever",
    ])
    assert done
    assert "There is no folder /no/such/folder" in replies[2]
    assert "RAFT" in replies[4] and "retriev" in replies[4] and replies[4].endswith("4. cpt (raw documents)")
    assert plan.purpose.startswith("Answer our customers") and plan.docs == DOCS and plan.stage == "raft"
    assert plan.time_budget_hours == 3 and plan.languages == ("en", "zh") and plan.evaluate is True
    assert plan.deploy == "local" and "local: a server on this machine" in replies[-1]
    assert "The plan (* = the default):" in replies[-1] and "deploy: local *" in replies[-1]


def test_a_chinese_interview_with_why_defaults_and_a_reask():
    plan, replies, done = _chat([
        "回答客户关于退货和保修的问题",
        "中文",
        f"在 {DOCS} 目录下",
        "为什么？",
        "默认",
        "两个小时",
        "也许吧",
        "不要",
        "改成英文",
        "3",
    ], lang="zh")
    assert done
    assert "最稳妥的第一步" in replies[3] and replies[3].endswith("4. cpt（继续预训练）")
    assert plan.stage == "sft" and "好的：time_budget_hours = 2" in replies[5]
    assert replies[6] == "要还是不要？" and plan.evaluate is False
    assert "已改为：languages = en" in replies[8] and plan.languages == ("en",)
    assert plan.deploy == "kubernetes" and "计划如下" in replies[-1]


def test_nothing_to_default_to_is_said_and_asked_again():
    plan, replies, done = _chat(["Help staff find HR policies", "both", "you decide"])
    assert not done and plan.docs is None
    assert replies[-1].startswith("There is no default folder") and "folder path" in replies[-1]


def test_language_follows_the_user():
    assert language_of("改成中文", "en") == "zh" and language_of("use both", "zh") == "en"
    assert language_of("/data/docs 3", "zh") == "zh"


def test_a_correction_it_cannot_make_is_said_not_pretended():
    plan, replies, _ = _chat(["Help customers", "actually use Qwen"])
    assert "cannot set base_model yet" in replies[-1] and plan.base_model == "tiny"
    assert replies[-1].endswith("English, Chinese, or both?")
