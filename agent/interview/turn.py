"""One turn of the interview without an LLM: the user's answer in, the updated plan and the agent's reply out.

An answer is read in this order (the first that applies wins), because a question back or a correction can
look like a plain answer ("no wait, 3 hours" reads as "no"):

1. a question back ("what is DPO?", "为什么？"): explained from the glossary, then the question again;
2. a correction of any slot ("actually use both languages", "改成中文"): that slot changes;
3. "default" / "随便": the slot keeps its default, and the reply says why it is the default;
4. the answer to the question asked, read by its slot's reader; unclear answers are asked again, never guessed.
   With an LLM (agent/interview/llm.py) the model reads only what the slot's reader cannot, and answers questions
   back that the glossary does not know.

    plan, lang = Plan(), "en"
    turn = answer_turn(plan, "Answer customers' questions about returns", lang)
    print(turn.reply)      # the next question
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.interview import understand as u
from agent.interview.glossary import explain
from agent.interview.plan import BadPlan, Hardware, Plan
from agent.interview.questions import QUESTIONS, READERS, Question, Unclear
from rag.loaders import detect_language

if TYPE_CHECKING:
    from agent.interview.llm import LlmReader, Reading

CORRECTABLE = {"languages": "languages", "docs": "docs", "method": "stage", "time_budget": "time_budget_hours",
               "base_model": "base_model", "hardware": "hardware"}
"""`understand.correction`'s slot hints (all of `understand.SLOTS`) and the plan slot each sets."""


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


def answer_turn(plan: Plan, answer: str, lang: str, reader: LlmReader | None = None) -> Turn:
    """Read `answer` to the current question (see the module docstring) and say what comes next. With an LLM
    `reader` (agent/interview/llm.py), what the slot's reader cannot read in step 4 is the model's to read, and
    its value is checked by the slot's reader again."""
    q = next_question(plan)
    if q is None:
        return _confirm(plan, answer, lang)
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
    if reader is not None:
        return _read_by_llm(plan, q, answer, lang, reader)
    try:
        value = q.read(answer)
    except Unclear as e:
        return Turn(plan, e.say[lang], False)
    return _ask(plan.with_answer(q.slot, value), lang, _noted(q.slot, value, lang))


def asks_back(answer: str) -> bool:
    """The answer ends in a question mark: with an LLM, the model answers it (rules would read "can it run on
    my laptop?" as the assistant's purpose)."""
    return answer.rstrip().endswith(("?", "？"))


def read_slot(slot: str, question: str, answer: str, lang: str, reader: LlmReader) -> Reading:
    """How the LLM mode reads `answer` into `slot`: the slot's own reader first (it never guesses, and small
    models misread answers it reads right), the model only for what the rules cannot read and for questions
    back."""
    from agent.interview.llm import Reading

    if not asks_back(answer):
        try:
            return Reading("value", READERS[slot](answer), by="rules")
        except Unclear:
            pass
    return reader.read(slot, question, answer, lang)


def _read_by_llm(plan: Plan, q: Question, answer: str, lang: str, reader: LlmReader) -> Turn:
    """The model's reading of a free-form answer. Its value goes through the slot's reader too (as text), so a
    folder that is not there or a model not on this machine is refused as it is without an LLM."""
    got = read_slot(q.slot, q.ask[lang], answer, lang, reader)
    if got.kind == "question":
        return _ask(plan, lang, got.say)
    if got.kind == "unclear":
        return Turn(plan, got.say, False)
    if got.kind == "default":
        return answer_turn(plan, "default", lang)
    value = got.value
    if q.slot in ("docs", "base_model"):
        try:
            value = q.read(str(value))
        except Unclear as e:
            return Turn(plan, e.say[lang], False)
    try:
        return _ask(plan.with_answer(q.slot, value), lang, _noted(q.slot, value, lang))
    except BadPlan as e:
        return Turn(plan, f"{e}\n\n{q.ask[lang]}", False)


def _correction(plan: Plan, answer: str, lang: str) -> Turn | None:
    found = u.correction(answer)
    if found is None:
        return None
    hint, rest = found
    slots = [CORRECTABLE[hint]] if hint else list(CORRECTABLE.values())
    values = {}
    for slot in slots:
        try:
            values[slot] = READERS[slot](rest)
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


def _confirm(plan: Plan, answer: str, lang: str) -> Turn:
    """Every question is answered and the plan was shown: a yes starts, a correction changes it (and shows it
    again), a no asks what to change."""
    term = u.question_back(answer)
    if term is not None and term != "why":
        return _ask(plan, lang, explain(term, lang))
    fixed = _correction(plan, answer, lang)
    if fixed is not None:
        return fixed
    said = u.yes_no(answer)
    if said is None:  # every slot is answered, so a bare value ("use tiny", "3 hours") is a change
        fixed = _correction(plan, f"actually {answer}", lang)
        if fixed is not None:
            return fixed
    if said is True:
        plan, memory, refused = _recommended(plan)
        if refused is not None:
            return Turn(plan, f"{_summary(plan, lang)}\n\n{CONFIRM[lang]}", False)
        return Turn(plan, {"en": "Starting.", "zh": "开始。"}[lang], True)
    if said is False:
        return Turn(plan, {"en": "What should change? For example \"use the 0.5B\", \"change the time to 2 hours\", "
                                 "\"actually I have two 24 GB GPUs\".",
                           "zh": "要改哪里？例如“改用 0.5B”、“时间改成两个小时”、“其实我有两张 24G 的卡”。"}[lang], False)
    return Turn(plan, f"{_summary(plan, lang)}\n\n{CONFIRM[lang]}", False)


CONFIRM = {"en": "Start with this plan? (yes, or say what to change)", "zh": "按这个计划开始吗？（好的，或者说要改哪里）"}


def _ask(plan: Plan, lang: str, before: str) -> Turn:
    q = next_question(plan)
    if q is None:
        return Turn(plan, f"{before}\n\n{_summary(plan, lang)}\n\n{CONFIRM[lang]}", False)
    return Turn(plan, f"{before}\n\n{q.ask[lang]}", False)


def _shown(value: object, slot: str = "") -> str:
    if slot == "time_budget_hours" and isinstance(value, float):
        from training.memory import human_duration

        return human_duration(value * 3600)
    if isinstance(value, Hardware):
        return f"{value.gpus} x {value.gpu_memory_gib:g} GiB GPU" if value.device == "cuda" else "CPU"
    return ", ".join(value) if isinstance(value, tuple) else str(value)


def _noted(slot: str, value: object, lang: str, changed: bool = False) -> str:
    shown = _shown(value, slot)
    if lang == "zh":
        return f"{'已改为' if changed else '好的'}：{slot} = {shown}"
    return f"{'Changed' if changed else 'Noted'}: {slot} = {shown}"


def _recommended(plan: Plan) -> tuple[Plan, object, str | None]:
    """(the plan with the recommendation, its memory estimate, None) or (the plan, None, why nothing fits)."""
    from agent.interview.recommend import recommended
    from training.errors import DoesNotFit

    try:
        fitted, memory = recommended(plan)
    except DoesNotFit as e:
        return plan, None, str(e)
    return fitted, memory, None


def _summary(plan: Plan, lang: str) -> str:
    """The plan as the user answered it (* = the default), then what the agent recommends for training."""
    from agent.interview.recommend import explain as training_lines

    head = "计划如下（带 * 的是默认值）：" if lang == "zh" else "The plan (* = the default):"
    default = Plan()
    rows = [f"  {q.slot}: {_shown(getattr(plan, q.slot), q.slot)}{' *' if getattr(plan, q.slot) == getattr(default, q.slot) else ''}"
            for q in QUESTIONS]
    fitted, memory, refused = _recommended(plan)
    if refused is not None:
        tail = {"en": f"It does not fit this hardware: {refused}\nChoose a smaller model (\"use tiny\") or other "
                      "hardware (\"actually I have a 24 GB GPU\").",
                "zh": f"这套硬件放不下：{refused}\n请换一个更小的模型（“改用 tiny”）或其他硬件（“其实我有一张 24G 的卡”）。"}
        return "\n".join([head, *rows, tail[lang]])
    title = "推荐的训练设置：" if lang == "zh" else "Recommended training:"
    return "\n".join([head, *rows, title, training_lines(fitted, memory, lang)])
