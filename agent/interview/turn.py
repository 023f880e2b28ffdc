"""One turn of the interview without an LLM: the user's answer in, the updated plan and the agent's reply out.

An answer is read in this order (the first that applies wins), because a question back or a correction can
look like a plain answer ("no wait, 3 hours" reads as "no"):

1. a question back ("what is DPO?", "为什么？"): explained from the glossary, then the question again;
2. a correction of any slot ("actually use both languages", "改成中文"): that slot changes;
3. "default" / "随便": the slot keeps its default, and the reply says why it is the default;
4. the answer to the question asked, read by its slot's reader; unclear answers are asked again, never guessed.

    plan, lang = Plan(), "en"
    turn = answer_turn(plan, "Answer customers' questions about returns", lang)
    print(turn.reply)      # the next question
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.interview import understand as u
from agent.interview.glossary import explain
from agent.interview.plan import BadPlan, Plan
from agent.interview.questions import BY_SLOT, QUESTIONS, Question, Unclear
from rag.loaders import detect_language

CORRECTABLE = {"languages": "languages", "docs": "docs", "method": "stage", "time_budget": "time_budget_hours"}
"""`understand.correction`'s slot hints that this interview asks about, and the plan slot each sets."""


@dataclass(frozen=True)
class Turn:
    plan: Plan
    reply: str
    done: bool
    """Every question is answered: the plan is ready to show and confirm."""


def language_of(text: str, current: str) -> str:
    """The language to reply in: the answer's (rag's `detect_language`), or the conversation's language so
    far when the answer has no words to tell by (numbers and paths say nothing)."""
    words = re.sub(r"\S*[/~\\]\S*", " ", text)
    if not re.search(r"[A-Za-z]{2,}|[\u4e00-\u9fff]", words):
        return current
    return detect_language(words)


def next_question(plan: Plan) -> Question | None:
    return next((q for q in QUESTIONS if q.slot not in plan.answered), None)


def first_question(lang: str) -> str:
    return QUESTIONS[0].ask[lang]


def answer_turn(plan: Plan, answer: str, lang: str) -> Turn:
    """Read `answer` to the current question (see the module docstring) and say what comes next."""
    q = next_question(plan)
    if q is None:
        return Turn(plan, _summary(plan, lang), True)
    term = u.question_back(answer)
    if term == "why":
        return _ask(plan, lang, q.why_default[lang])
    if term is not None:
        return _ask(plan, lang, explain(term, lang))
    fixed = _correction(plan, answer, lang)
    if fixed is not None:
        return fixed
    if u.is_default(answer):
        if q.slot in ("purpose", "docs"):  # nothing to default to
            return _ask(plan, lang, q.why_default[lang])
        return _ask(plan.with_answer(q.slot, getattr(plan, q.slot)), lang, q.why_default[lang])
    try:
        value = q.read(answer)
    except Unclear as e:
        return Turn(plan, e.say[lang], False)
    return _ask(plan.with_answer(q.slot, value), lang, _noted(q.slot, value, lang))


def _correction(plan: Plan, answer: str, lang: str) -> Turn | None:
    found = u.correction(answer)
    if found is None:
        return None
    hint, rest = found
    if hint and hint not in CORRECTABLE:
        # not asked yet (issue 14: the base model and hardware questions come with the recommendation)
        say = {"en": f"This interview cannot set {hint} yet, so it stays as it is; nothing was changed.",
               "zh": f"这个访谈目前还不能设置 {hint}，保持不变；没有做任何修改。"}
        return _ask(plan, lang, say[lang])
    slots = [CORRECTABLE[hint]] if hint else list(CORRECTABLE.values())
    values = {}
    for slot in slots:
        try:
            values[slot] = BY_SLOT[slot].read(rest)
        except Unclear as e:
            if hint:  # the slot is named but its new value is not clear: ask for it
                return Turn(plan, e.say[lang], False)
    if len(values) != 1:
        return None  # not a correction after all (or an ambiguous one): read it as an answer
    (slot, value), = values.items()
    try:
        return _ask(plan.with_answer(slot, value), lang, _noted(slot, value, lang, changed=True))
    except BadPlan as e:
        return Turn(plan, str(e), False)


def _ask(plan: Plan, lang: str, before: str) -> Turn:
    q = next_question(plan)
    if q is None:
        return Turn(plan, f"{before}\n\n{_summary(plan, lang)}", True)
    return Turn(plan, f"{before}\n\n{q.ask[lang]}", False)


def _shown(value: object) -> str:
    return ", ".join(value) if isinstance(value, tuple) else str(value)


def _noted(slot: str, value: object, lang: str, changed: bool = False) -> str:
    shown = _shown(value)
    if lang == "zh":
        return f"{'已改为' if changed else '好的'}：{slot} = {shown}"
    return f"{'Changed' if changed else 'Noted'}: {slot} = {shown}"


def _summary(plan: Plan, lang: str) -> str:
    head = "计划如下（带 * 的是默认值）：" if lang == "zh" else "The plan (* = the default):"
    default = Plan()
    rows = [f"  {q.slot}: {_shown(getattr(plan, q.slot))}{' *' if getattr(plan, q.slot) == getattr(default, q.slot) else ''}"
            for q in QUESTIONS]
    return "\n".join([head, *rows])
