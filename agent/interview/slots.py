"""The slots the interview fills, the words that name each one, and the answers that correct an earlier slot.

`languages` and `parse_path` read the values of two slots; `correction` tells which slot a "no wait, ..."
answer changes, so the agent re-runs that slot's parser on the rest:

    correction("change the language to Chinese")  # ("languages", "Chinese")
    correction("不对，文档在 /x/y")                 # ("docs", "文档在 /x/y")
"""

from __future__ import annotations

import os.path
import re
import unicodedata

from agent.interview.hardware import gpus
from agent.interview.numbers import quantity
from agent.interview.text import normalize, word

SLOTS: tuple[str, ...] = ("base_model", "languages", "method", "docs", "time_budget", "hardware")
"""What `correction` may name; "" means the slot could not be told from the words."""

# ---------------------------------------------------------------- languages

_EN = re.compile(r"英文|英语|" + word(r"(?:english|en|eng)"))
_ZH = re.compile(r"中文|汉语|普通话|华语|国语|简体|繁体|" + word(r"(?:chinese|mandarin|zh|cn|zh-cn)"))
_BOTH = re.compile(r"中英|英中|双语|都要|都需要|两种|两个都|两者都|" + word(r"(?:both|bilingual)"))
_LANG_NEG = re.compile(r"(?:" + word(r"(?:not|no|without|except)") + r"|不要|不用|不需要|不含|除了)\s*(?:in\s+)?$")


def languages(text: str) -> tuple[str, ...] | None:
    """("en",), ("zh",) or ("en", "zh") from "English", "中文", "both", "中英双语", "Chinese, not English";
    None when neither is named. Other languages are not recognised and are ignored."""
    t = normalize(text)
    found: set[str] = set()
    if _BOTH.search(t):
        found = {"en", "zh"}
    for code, pattern in (("en", _EN), ("zh", _ZH)):
        for m in pattern.finditer(t):
            if _LANG_NEG.search(t[:m.start()]):
                found.discard(code)
                break
            found.add(code)
    return tuple(sorted(found)) or None


# ---------------------------------------------------------------- paths

_QUOTED = re.compile(r"[\"'“‘`「『]([^\"'”’`」』]+)[\"'”’`」』]")
_PATH = re.compile(r"(?<![A-Za-z0-9_:/.~])(?:~|\.{1,2})?/[^\s,;，。；、：:\"'“”‘’（）()]+|(?<![\w/~])~(?=\s|$)")
_PATH_TAIL = re.compile(r"(?:目录|文件夹|路径)?(?:下面|里面|下|里|中|内)?$")


def parse_path(text: str) -> str | None:
    """The filesystem path in an answer ("my docs are in ~/company/docs", "在 /data/faq 目录下", a quoted path
    with spaces), with ~ expanded and normalised; None without a path-looking token. Existence is not checked;
    Windows paths and bare relative names ("docs") are not recognised."""
    t = unicodedata.normalize("NFKC", text).strip()
    quoted = [q.strip() for q in _QUOTED.findall(t) if re.match(r"(?:~|\.{1,2})?/|~$", q.strip())]
    if quoted:
        path = quoted[0]
    else:
        bare = _PATH.search(t)
        if not bare:
            return None
        path = _PATH_TAIL.sub("", bare.group(0).rstrip(".!?"))
    return os.path.normpath(os.path.expanduser(path)) if path else None


# ---------------------------------------------------------------- corrections

_NOUNS: dict[str, str] = {  # words that name a slot
    "base_model": word(r"(?:base\s+)?models?") + "|模型|基座|底座",
    "languages": word(r"languages?") + "|语言|语种",
    "method": word(r"(?:training\s+)?(?:methods?|approach|technique)") + "|方法|方式|训练方法",
    "docs": word(r"(?:docs|documents?|folders?|directory|path|files)") + "|文档|目录|文件夹|路径|资料|文件",
    "time_budget": word(r"(?:time|budget|time\s+budget|duration|deadline|how\s+long)") + "|时间|时长|预算|多久",
    "hardware": word(r"(?:gpus?|cards?|graphics|vram|memory|hardware|machine|cpu)") + "|显卡|显存|硬件|机器|内存|卡"}
_FAMILIES = word(r"(?:qwen[\w.\-]*|llama[\w.\-]*|mistral[\w.\-]*|gemma[\w.\-]*|phi[\w.\-]*|deepseek[\w.\-]*|"
                 r"(?:chat)?glm[\w.\-]*|yi|baichuan[\w.\-]*|internlm[\w.\-]*)") + "|千问|通义|文心|智谱"
_METHODS = word(r"(?:sft|raft|dpo|cpt|q?lora|full\s+fine[\s\-]?tun(?:e|ing))") + "|问答|偏好|预训练|监督微调|全量"
_VALUES: dict[str, object] = {  # does the rest hold a value of this slot?
    "base_model": lambda t: re.search(_FAMILIES, t),
    "languages": languages,
    "method": lambda t: re.search(_METHODS, t),
    "docs": parse_path,
    "time_budget": lambda t: quantity(t, "duration"),
    "hardware": lambda t: re.search(_NOUNS["hardware"], t) or (gpus(t) and gpus(t).count > 0 and not t.isdigit())}

_TO = re.compile(  # "change the language to", "换成": the new value follows
    word(r"(?:change|switch|set(?!\s+up)|update)(?:\s+\S+){0,3}?\s+to") + r"\s*|" + word(r"make\s+it") + r"\s*"
    r"|(?:改成|改为|换成|换为|改用|换用|设为|设成|应该是|我是说|我的意思是|还是用|还是换|还是选)\s*", re.IGNORECASE)
_TRIGGER = re.compile(
    word(r"(?:actually|no\s+wait|wait|i\s+meant|i\s+mean|on\s+second\s+thought|scratch\s+that|correction|instead|"
         r"rather|change|switch|go\s+back)")
    + r"|改一下|换一下|不对|说错了|搞错了|其实|更正|等等|等一下|重新选|修改|" + _TO.pattern, re.IGNORECASE)
_LEAD = re.compile(
    r"^(?:[\s,.;:!?，。；：！？…\-]|" + word(r"(?:actually|no\s+wait|wait|sorry|oops|i\s+meant|i\s+mean|correction|please|"
    r"let's|lets|use|go\s+with|it's|its|it\s+is|on\s+second\s+thought|scratch\s+that|rather|change|switch|"
    r"the|my)") + r"|不对|说错了|搞错了|其实|等等|等一下|更正|修改|改一下|换一下|用|是|吧)+", re.IGNORECASE)
_TRAIL = re.compile(r"(?:[\s,.;:!?，。；：！？…]|" + word(r"(?:instead|rather|please)") + r"|吧|了)+$",
                    re.IGNORECASE)


def _slot(whole: str, rest: str) -> str:
    named = [s for s, pattern in _NOUNS.items() if re.search(pattern, whole)]
    if len(named) == 1:
        return named[0]
    valued = [s for s, found in _VALUES.items() if found(rest)]  # type: ignore[operator]
    return valued[0] if len(valued) == 1 else ""


def correction(text: str) -> tuple[str, str] | None:
    """(slot_hint, rest) when the user corrects an earlier answer ("actually use Qwen", "改成中文", "no wait,
    3 hours"), else None. slot_hint is one of SLOTS, or "" when the words do not tell (the caller then tries
    every slot's parser on rest). rest keeps the user's case; it is "" when only the slot was named
    ("change the method"). A bare "不对" or "actually" names nothing and gives None."""
    t = unicodedata.normalize("NFKC", text).strip()
    if not _TRIGGER.search(t):
        return None
    to = None
    for m in _TO.finditer(t):
        to = m
    rest = t[to.end():] if to else t
    rest = _TRAIL.sub("", _LEAD.sub("", rest)).strip()
    slot = _slot(normalize(t), normalize(rest))
    if slot and re.fullmatch(_NOUNS[slot], normalize(rest)):
        rest = ""  # "change the method": the slot, but no new value yet
    if not slot and not rest:
        return None
    return slot, rest
