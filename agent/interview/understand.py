"""Deterministic understanding of a user's chat answers, English and Chinese: no model, no I/O.

Every function returns None (or False for `is_default`) when the text does not answer, and the agent asks
again. Numbers and quantities live in `numbers.py`, GPUs in `hardware.py`, languages, paths and
corrections in `slots.py`; all are re-exported here, so the agent imports one module:

    from agent.interview import understand as u
    u.yes_no("好的，不过…")                     # True
    u.choice("第二个", METHODS)                 # "raft"
    u.quantity("一个半小时", "duration")        # Quantity(value=1.5, unit="hours")
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.interview.glossary import ALIASES, GLOSSARY
from agent.interview.hardware import GPU_MEMORY_GIB, GpuAnswer, gpus
from agent.interview.numbers import NUM, Quantity, number, quantity
from agent.interview.slots import SLOTS, correction, languages, parse_path
from agent.interview.text import normalize, phrases, squash, word

# ---------------------------------------------------------------- yes / no

_UNSURE = ["maybe", "perhaps", "probably", "possibly", "not sure", "unsure", "i don't know", "don't know", "dunno",
           "no idea", "not certain", "yes and no", "depends", "i guess", "hmm", "whatever", "也许", "可能", "或许",
           "大概", "不确定", "不知道", "不清楚", "看情况", "说不好", "不好说", "不一定", "再说", "再看看", "想想",
           "随便", "无所谓", "是不是", "对不对", "好不好", "行不行", "可不可以", "要不要"]
_NO = ["i don't think so", "don't think so", "of course not", "not really", "not now", "not yet", "no thanks",
       "no thank you", "not right", "not correct", "incorrect", "wrong", "don't", "do not", "stop", "cancel",
       "never", "nope", "nah", "no", "n", "不是", "不好", "不行", "不可以", "不对", "不要", "不用", "不需要", "不想",
       "不了", "先不", "不太好", "不太行", "不太对", "不怎么好", "算了", "取消", "否", "别", "没有", "错", "不"]
_YES = ["no problem", "no worries", "why not", "sounds good", "go ahead", "do it", "please do", "of course",
        "let's go", "let's do it", "yes", "y", "yeah", "yep", "yup", "sure", "ok", "okay", "alright", "all right",
        "right", "correct", "absolutely", "definitely", "fine", "没问题", "不错", "开始吧", "好的", "好啊", "好",
        "行", "还行", "可以", "是的", "是", "对", "对的", "嗯", "没错", "确定", "当然", "同意", "要", "开始"]
_NEUTRAL = ["对不起", "好像", "别的", "要不然", "不客气", "可能性"]  # hold words that only look like yes or no
_SIGNAL = {**{p: "unsure" for p in _UNSURE}, **{p: False for p in _NO}, **{p: True for p in _YES},
           **{p: None for p in _NEUTRAL}}
_YES_NO = phrases(list(_SIGNAL))
_CLAUSES = re.compile(r"[,;.!?。！？；、\n…]+|\s+but\s+|不过|但是|可是|然而")
_FILLERS = re.compile(r"^(?:那就|那|就|哦|噢|啊|嗯)*$")
_PARTICLES = re.compile(r"^[吧啊呀了啦的哦呢嘛]*$")


def _clause_signal(clause: str) -> object:
    """True, False, "unsure", or None (nothing said) for one clause."""
    found = set()
    for m in _YES_NO.finditer(clause):
        said = squash(m.group(0))
        if len(said) == 1 and not said.isascii():  # "是" counts at the start or end of a clause, not in "是什么"
            if not (_FILLERS.match(clause[:m.start()].strip()) or _PARTICLES.match(clause[m.end():].strip())):
                continue
        found.add(_SIGNAL[said])
    found.discard(None)
    if "unsure" in found or found == {True, False}:
        return "unsure"
    return found.pop() if found else None


def yes_no(text: str) -> bool | None:
    """True for yes ("sure", "没问题", "好的，不过…"), False for no ("I don't think so", "不是", "算了"),
    None when unsure ("maybe", "也许", "yes and no"), asking back ("ok?", "可以吗") or not answering.
    The first clause that says something decides; a lone "嗯" gives way to a later clause."""
    t = normalize(text)
    if re.search(r"[?？]\s*$|[吗么呢]\W*$", t) and not re.search(word("why not"), t):
        return None
    weak = None
    for clause in _CLAUSES.split(t):
        clause = clause.strip()
        said = _clause_signal(clause)
        if said == "unsure":
            return None
        if said is not None:
            if clause in ("嗯", "嗯嗯", "en"):
                weak = said
                continue
            return bool(said)
    return weak


# ---------------------------------------------------------------- defaults

_DEFAULT = phrases([
    "default", "defaults", "whatever", "you choose", "you pick", "you decide", "your call", "up to you",
    "you tell me", "recommended", "your recommendation", "what you recommend", "whatever you recommend",
    "doesn't matter", "does not matter", "don't care", "no preference", "either is fine", "默认", "随便", "都行",
    "都可以", "都好", "你定", "你来定", "你决定", "你选", "你看着办", "推荐的", "按推荐", "听你的", "无所谓"])
_ANY = re.compile(r"^(?:any|anything|either)(?: one)?(?: (?:is fine|will do|works))?[.!。]?$")
_NOT_DEFAULT = re.compile(word(r"(?:not|no|don't|do not)\s+(?:use\s+)?(?:the\s+)?(?:default|recommended)")
                          + r"|(?:不要|不用|别用|别|不想用|不想要|不|非)\s*(?:用\s*)?(?:默认|推荐)")
_QUESTION = re.compile(r"[?？]\s*$|[吗呢]\W*$|什么|啥|哪个|哪一个|" + word("(?:what|which|how)"))


def is_default(text: str) -> bool:
    """True when the user leaves the choice to the agent ("whatever", "use the default", "你定", "按推荐").
    "skip" is not a default; a question ("what do you recommend?") or "not the default" is not either."""
    t = normalize(text)
    if _NOT_DEFAULT.search(t) or _QUESTION.search(t):
        return False
    return bool(_DEFAULT.search(t) or _ANY.match(t))


# ---------------------------------------------------------------- choices

@dataclass(frozen=True)
class Choice:
    """One option offered: `key` is returned; `names` are its other names, English and Chinese."""

    key: str
    names: tuple[str, ...] = ()


_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5}
_ORD = "|".join(_ORDINALS)
_PICK = [
    re.compile(rf"^\s*(?:#\s*)?(?P<n>{NUM})\s*[.)、]?\s*[.!。]?$"),  # "2", "二", "two"
    re.compile(word(rf"(?:option|number|no\.?|choice|pick|choose|select|item)\s*#?\s*(?P<n>{NUM})")),
    re.compile(r"#\s*(?P<n>\d+)"),
    re.compile(rf"第\s*(?P<n>{NUM})"),
    re.compile(r"(?:选|要|用)\s*(?P<n>\d+|[一二两三四五六七八九十]+)(?:\s*[个号项种条])?(?![\u4e00-\u9fff])"),
    re.compile(word(rf"(?:the\s+)?(?P<o>{_ORD})(?:\s+(?:one|option|choice))?") + r"(?=\s*[.!。]?$)"),
    re.compile(word(rf"the\s+(?P<o>{_ORD})") + "|" + word(rf"(?P<o2>{_ORD})\s+(?:one|option|choice)")),
]
_LAST = re.compile(word(r"the\s+last(?:\s+one)?|last\s+one") + "|最后一个|最后那个")
_NEGATED = re.compile(r"(?:" + word(r"(?:not|no|don't|never)") + r"|不要|不用|不是|别|不)\s*"
                      r"(?:(?:want\s+(?:to\s+)?)?use\s+|want\s+|想用\s*|想要\s*|用\s*|选\s*)?$")


def _picked_number(t: str, n_options: int) -> int | None:
    if _LAST.search(t):
        return n_options
    for pattern in _PICK:
        m = pattern.search(t)
        if m:
            groups = m.groupdict()
            if groups.get("n"):
                return int(number(groups["n"]) or 0)  # 0 is never an option, so it reads as no pick
            return _ORDINALS[groups.get("o") or groups["o2"]]
    return None


def _alias_pattern(name: str) -> str:
    body = r"[\s\-_]*".join(re.escape(w) for w in re.split(r"[\s\-_]+", normalize(name)) if w)
    return word(body) if name.isascii() else body


def choice(text: str, options: Sequence[Choice]) -> str | None:
    """The key of the one option the text picks, by number ("2", "the second", "第二个", "选2", "option 2")
    or by key or name as a whole word ("dpo", "偏好"); None when none or several match. An option named
    after a negation ("not DPO", "不要 DPO") is not picked."""
    t = normalize(text)
    spans: list[tuple[int, int, str]] = []
    for opt in options:
        for name in (opt.key, *opt.names):
            for m in re.finditer(_alias_pattern(name), t):
                spans.append((m.start(), m.end(), opt.key))
    # a name inside a longer one that belongs to another option does not count ("lora" in "qlora")
    spans = [s for s in spans if not any(o[2] != s[2] and o[0] <= s[0] and s[1] <= o[1] and o[1] - o[0] > s[1] - s[0]
                                         for o in spans)]
    picked = {key for start, _, key in spans if not _NEGATED.search(t[:start])}
    n = _picked_number(t, len(options))
    if n is not None:
        if not 1 <= n <= len(options):
            return None
        picked.add(options[n - 1].key)
    return picked.pop() if len(picked) == 1 else None


# ---------------------------------------------------------------- questions back

_WHY = re.compile(word(r"(?:why|how\s+come)") + r"|为什么|为啥|为何|凭什么")
_WHY_NOT_ALONE = re.compile(r"^why\s+not[\s!.?]*$")
_ASK = re.compile(
    word(r"(?:what(?:'s|\s+is|\s+are|\s+does|\s+do)|what\s+do\s+you\s+mean|meaning\s+of|define|explain|"
         r"tell\s+me\s+(?:more\s+)?about|how\s+does|never\s+heard\s+of)")
    + r"|是什么|是啥|啥是|什么是|什么叫|什么意思|啥意思|指什么|指的是|解释|介绍一下|是干什么|是干嘛|何谓|不懂|不明白"
    + r"|[?？]\s*$")
_TERMS = phrases([*GLOSSARY, *ALIASES])


def question_back(text: str) -> str | None:
    """The glossary key the user asks about instead of answering ("what is DPO?", "什么是 LoRA", "explain
    RAFT", "DPO?"), "why" for a why-question about the current recommendation, else None (also for a
    question about a term the glossary lacks, and for "why not", which agrees)."""
    t = normalize(text)
    if _WHY_NOT_ALONE.match(t):
        return None
    why = _WHY.search(t)
    if why and why.start() <= 2:  # "why?", "so why DPO": asked before anything else
        return "why"
    if _ASK.search(t):
        terms = [m.group(0) for m in _TERMS.finditer(t)]
        if terms:
            name = squash(max(terms, key=len))
            return name if name in GLOSSARY else ALIASES.get(name)
    return "why" if why else None


__all__ = [
    "GPU_MEMORY_GIB", "SLOTS", "Choice", "GpuAnswer", "Quantity", "choice", "correction", "gpus", "is_default",
    "languages", "number", "parse_path", "quantity", "question_back", "yes_no"]
