"""Questions as customers ask them, answers that answer, and the rules that made them (issue 13)."""

import pytest

from rag.loaders import Document
from training.data.answers import shape_answers, trim_answer
from training.data.questions import asks, clean_question, paraphrases, restates
from training.data.rules import find_pairs


@pytest.mark.parametrize(("heading", "question"), [
    ("3.1.3. The stable distributions really contains outdated packages. Why is it so?",
     "The stable distributions really contains outdated packages. Why is it so?"),
    ("4.6. How should I install a non-Debian program?", "How should I install a non-Debian program?"),
    ("7.8. 什么是虚拟软件包？", "什么是虚拟软件包？"),
    ("第 15 章 下一个 Debian 发布版本", "下一个 Debian 发布版本"),
    ("Chapter 9. Keeping your Debian system up-to-date", "Keeping your Debian system up-to-date"),
    ("Q12: Can I get a refund within 30 days?", "Can I get a refund within 30 days?"),
    ("A.1. Where do I start?", "Where do I start?"),
    ("**(a) What is DNS?** ¶", "What is DNS?"),
    ("2026 plans", "2026 plans"),  # a number that is not a section number stays
    ("How many days do I have?", "How many days do I have?"),
])
def test_section_numbers_and_decoration_are_stripped(heading, question):
    assert clean_question(heading) == question


def test_paraphrases_reword_the_question_the_same_way_every_time():
    q = "How should I install a non-Debian program?"
    got = paraphrases(q, "en", 3)
    assert len(got) == 3 and len(set(got)) == 3 and q not in got
    assert got == paraphrases(q, "en", 3), "deterministic"
    assert "How do I install a non-Debian program?" in paraphrases(q, "en", 4), "the question form is rewritten"
    assert paraphrases(q, "en", 0) == []
    zh = paraphrases("什么是虚拟软件包？", "zh", 2)
    assert set(zh) <= {"虚拟软件包是什么？", "虚拟软件包指的是什么？", "能解释一下虚拟软件包吗？"} and len(zh) == 2
    assert "请问怎么确保所有程序使用相同的纸张大小？" in paraphrases("如何确保所有程序使用相同的纸张大小？", "zh", 3)
    other = paraphrases("我可以制作或售卖 Debian 的 CD 吗？", "zh", 5)
    assert "能不能制作或售卖 Debian 的 CD？" in other and all("谢谢" in p or "CD" in p for p in other)


@pytest.mark.parametrize(("text", "expected"), [
    ("How can I keep a log of the packages I add", True), ("Can I return opened items", True),
    ("为什么要这样做", True), ("我可以退货吗", True), ("Returns policy", False), ("How returns work", False),
    ("如何退货", False),
])
def test_a_heading_asks_with_or_without_its_question_mark(text, expected):
    assert asks(text) is expected


def test_an_answer_that_only_repeats_the_question_is_caught_a_short_real_one_is_not():
    assert restates("What is a Debian control file?", "What is a Debian control file?")
    assert restates("什么是虚拟软件包？", "虚拟软件包。")
    assert restates("How do I pay?", "")
    assert not restates("Is shipping free?", "Yes, always.")
    assert not restates("Must I reboot?", "No.")
    assert not restates("什么是虚拟软件包？", "虚拟软件包是一个通用的名称。")


def _words(text):
    return len(text.split())


def test_answers_keep_whole_paragraphs_then_whole_sentences_within_the_budget():
    text = "One two three. Four five six.\n\nSeven eight nine ten."
    assert trim_answer(text, _words, 100) == text
    assert trim_answer(text, _words, 6) == "One two three. Four five six."
    assert trim_answer(text, _words, 4) == "One two three.", "the first paragraph's whole sentences"
    assert trim_answer("One two three four five. Six.", _words, 2) == "One two three four five.", \
        "at least one sentence, never cut inside it"
    zh = "第一句话。第二句话很长很长。\n\n第二段。"
    assert trim_answer(zh, len, 5) == "第一句话。"


def _doc(text, language="en", title="Shop FAQ"):
    return Document(id="d", source="faq.md", title=title, text=text, language=language, kind="markdown")


def test_rules_reject_what_they_cannot_parse():
    text = ("# Shop FAQ\n\n## 9.4. How can I keep a log of the packages I add\n\nUse logrotate for it.\n\n"
            "## Definitions\n\nWhat is a control file? It must be read first.\n\n"
            "Oak Circle is a loyalty program for members that gives 5% back.\n\n"
            "A common release goal is NoRCBugs which means no release-critical bugs.\n\n"
            "## Delivery\n\nParcels must be signed for.\nSee 9.4. How can I keep a log?\n")
    pairs = {(p.question, p.rule): p.answer for p in find_pairs(_doc(text))}
    assert ("How can I keep a log of the packages I add?", "question-heading") in pairs, \
        "a heading that asks without its question mark is a question, its number stripped"
    assert not any(q == "What is What?" for q, _ in pairs), "a question is not a definition"
    assert ("What is Oak Circle?", "definition") in pairs
    assert [q for q, rule in pairs if rule == "definition"] == ["What is Oak Circle?"], "a clause is not a term"
    zh = find_pairs(_doc("# 说明\n\n这里是一个 crontab 文件的例子。\n\n预依赖是指安装前必须满足的依赖。\n", "zh", "说明"))
    assert [p.question for p in zh if p.rule == "definition"] == ["什么是预依赖？"]
    delivery = pairs[("What does the Shop FAQ say about delivery?", "policy")]
    assert delivery == "Parcels must be signed for.", "navigation lines are not policy"


def test_shape_answers_trims_rule_answers_and_drops_restatements():
    from types import SimpleNamespace

    long = "First paragraph here.\n\n" + "More words " * 50
    seeds = [SimpleNamespace(question="How?", answer=long, rule="question-heading"),
             SimpleNamespace(question="What is X?", answer="What is X?", rule="qa-markers"),
             SimpleNamespace(question="Why?", answer=long, rule="teacher:m")]
    out = shape_answers(seeds, _words, budget=10)
    assert [s.question for s in out.examples] == ["How?", "Why?"] and out.dropped_restating == 1
    assert out.examples[0].answer == "First paragraph here." and out.trimmed == 1
    assert out.examples[1].answer == long, "a teacher's answer is kept as written"
